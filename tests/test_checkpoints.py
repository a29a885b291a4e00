"""Checkpoints in a running system: when they are written, what they hold, what they refuse."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import pytest
import torch
from runtime_parts import (
    BrightnessTrainer,
    Client,
    GatedTrainer,
    ScriptedWorld,
    build_runtime,
    run_with,
    wait_for,
)

from ami.checkpoints import CheckpointStore, read
from ami.checkpoints.file_format import write_file
from ami.experiment_checks import ConfigError

pytestmark = [pytest.mark.usefixtures("keep_main_thread_name"), pytest.mark.timeout(120)]


def saved_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.ckpt"))


def shut_down_after_runs(runs: int) -> object:
    def script(client: Client) -> None:
        wait_for(lambda: client.runtime.trainer.runs >= runs, f"{runs} training run(s)")
        client.call("POST", "/api/shutdown")

    return script


def test_a_stopped_run_saves_and_the_next_resumes_from_it(tmp_path: Path) -> None:
    first = build_runtime(
        tmp_path / "one", api=True, max_uptime=None, checkpoint_dir=tmp_path / "c"
    )
    assert run_with(first, shut_down_after_runs(2)) == 0  # type: ignore[arg-type]
    latest = CheckpointStore(tmp_path / "c").latest()
    assert latest is not None and saved_files(tmp_path / "c") == [latest]
    state = read(latest)
    model = state["training"]["models"]["models"]["brightness"]
    published = first.models._current.models["brightness"].module.state_dict()
    for name, value in model["published"].items():
        assert torch.equal(published[name], value), "the saved copy is the one acting"
    steps, runs = first.trainer.global_step, first.trainer.runs
    assert steps > 0 and state["run"]["reason"] == "final"
    assert state["inference"]["steps"] == first.inference.steps
    # The world's clock (its steps times the interval, 0.01 s here) is saved with them.
    assert state["inference"]["world_seconds"] == pytest.approx(first.inference.steps * 0.01)

    trainer = BrightnessTrainer(min_new_steps=10_000)  # no new run: state stays as loaded
    second = build_runtime(
        tmp_path / "two", trainer=trainer, max_uptime=0.5, resume_from=tmp_path / "c"
    )
    restored = second.models._current.models["brightness"].module.state_dict()
    for name, value in model["published"].items():
        assert torch.equal(restored[name], value), "resumed weights reach the inference copy"
    assert second.inference.steps == first.inference.steps, "counters carry on"
    assert second.main.run() == 0
    assert (trainer.global_step, trainer.runs) == (steps, runs)
    optimizer_state = trainer.optimizer.state_dict()["state"]
    assert optimizer_state and all(int(s["step"]) == steps for s in optimizer_state.values())


def test_resume_into_another_experiment_is_refused_before_start(tmp_path: Path) -> None:
    first = build_runtime(
        tmp_path / "one", api=True, max_uptime=None, checkpoint_dir=tmp_path / "c"
    )
    assert run_with(first, shut_down_after_runs(1)) == 0  # type: ignore[arg-type]
    latest = CheckpointStore(tmp_path / "c").latest()
    assert latest is not None
    state = read(latest)
    models = state["training"]["models"]["models"]
    models["other"] = models.pop("brightness")
    write_file(tmp_path / "renamed.ckpt", state)
    with pytest.raises(ConfigError, match=r"model\.models: the checkpoint has \['other'\]"):
        build_runtime(tmp_path / "two", resume_from=tmp_path / "renamed.ckpt")


def test_a_failed_training_thread_leaves_no_half_updated_checkpoint(tmp_path: Path) -> None:
    trainer = BrightnessTrainer(fail_at_run=2)
    runtime = build_runtime(
        tmp_path, trainer=trainer, max_uptime=60.0, checkpoint_dir=tmp_path / "c"
    )
    assert runtime.main.run() == 1
    assert saved_files(tmp_path / "c") == []


def test_a_run_that_never_trained_writes_no_checkpoint(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Before: a run that died at start (no camera) still wrote an untrained latest.pt."""
    runtime = build_runtime(
        tmp_path / "a", world=ScriptedWorld(fail_in_setup=True), checkpoint_dir=tmp_path / "a/c"
    )
    assert runtime.main.run() == 1
    assert saved_files(tmp_path / "a/c") == []
    idle = build_runtime(
        tmp_path / "b",
        trainer=BrightnessTrainer(batch_size=100_000),  # never ready
        api=True,
        max_uptime=None,
        checkpoint_dir=tmp_path / "b/c",
    )

    def save_then_stop(client: Client) -> None:
        wait_for(lambda: idle.inference.steps >= 5, "a few steps")
        number = client.call("POST", "/api/save")["save_request"]
        client.wait_for_status(
            lambda s: (
                s["checkpoint"]["save"] is not None
                and s["checkpoint"]["save"]["number"] >= number
                and s["checkpoint"]["save"]["state"] == "skipped"
            ),
            "the save is skipped",
        )
        client.call("POST", "/api/shutdown")

    with caplog.at_level(logging.INFO):
        assert run_with(idle, save_then_stop) == 0
    assert saved_files(tmp_path / "b/c") == []
    assert "no trainer has run yet: nothing to save" in caplog.text


def wait_written(client: Client, number: int) -> Mapping[str, object]:
    body = client.wait_for_status(
        lambda s: (
            s["checkpoint"]["save"] is not None
            and s["checkpoint"]["save"]["number"] >= number
            and s["checkpoint"]["save"]["state"] in ("written", "failed")
        ),
        f"save {number} is written",
    )
    save: Mapping[str, object] = body["checkpoint"]["save"]
    assert save["state"] == "written", save
    return save


def test_post_api_save_writes_a_checkpoint_while_running(tmp_path: Path) -> None:
    runtime = build_runtime(tmp_path, api=True, max_uptime=None, checkpoint_dir=tmp_path / "c")
    seen: dict[str, object] = {}

    def script(client: Client) -> None:
        wait_for(lambda: runtime.trainer.runs >= 1, "a training run")
        number = client.call("POST", "/api/save")["save_request"]
        save = wait_written(client, number)
        seen["path"] = save["path"]
        seen["exists"] = Path(str(save["path"])).is_file()
        client.call("POST", "/api/shutdown")

    assert run_with(runtime, script) == 0
    assert seen["exists"] is True
    state = read(Path(str(seen["path"])))
    assert state["run"]["reason"] == "request"


def test_a_save_while_paused_is_written_at_once_with_the_paused_state(tmp_path: Path) -> None:
    """Before: the API answered 200 but nothing was written until the resume.

    The trainer is paused in the middle of a run: the checkpoint says how far it got.
    """
    trainer = GatedTrainer(hold_at_step=3, steps_per_run=5)
    runtime = build_runtime(
        tmp_path, trainer=trainer, api=True, max_uptime=None, checkpoint_dir=tmp_path / "c"
    )
    seen: dict[str, object] = {}

    def script(client: Client) -> None:
        assert trainer.entered.wait(60)
        client.call("POST", "/api/pause")  # answered once the threads park, or unacknowledged
        trainer.release.set()  # the step in progress finishes; the trainer parks after it
        client.wait_for_status(lambda s: s["status"] == "paused", "paused")
        steps = trainer.global_step
        number = client.call("POST", "/api/save")["save_request"]
        save = wait_written(client, number)
        assert client.status()["status"] == "paused", "written without a resume"
        seen["state"] = read(Path(str(save["path"])))
        seen["steps"] = steps
        client.call("POST", "/api/resume")
        client.call("POST", "/api/shutdown")

    assert run_with(runtime, script) == 0
    state = seen["state"]
    assert isinstance(state, dict)
    saved = state["training"]["trainers"]["brightness"]
    assert saved["global_step"] == seen["steps"] == 3
    assert saved["in_run"] == 3, "three of the run's five steps were done"
    assert state["inference"]["steps"] > 0


def test_periodic_saves_keep_only_the_newest(tmp_path: Path) -> None:
    runtime = build_runtime(
        tmp_path,
        api=True,
        max_uptime=None,
        checkpoint_dir=tmp_path / "c",
        save_every=0.05,
        keep_last=2,
    )

    def script(client: Client) -> None:
        wait_for(lambda: runtime.trainer.runs >= 1, "a training run")
        assert runtime.main.saver is not None
        wait_for(lambda: runtime.main.saver.written >= 4, "four periodic saves")  # type: ignore[union-attr]
        client.call("POST", "/api/shutdown")

    assert run_with(runtime, script) == 0
    files = saved_files(tmp_path / "c")
    assert len(files) == 2, files
    latest = CheckpointStore(tmp_path / "c").latest()
    assert latest == files[-1]
    assert read(files[0])["run"]["reason"] == "periodic"


class PoisonTrainer(BrightnessTrainer):
    """Turns its model's weights into NaN after its first run."""

    def on_run_end(self) -> None:
        with torch.no_grad():
            self.module("brightness").weight.fill_(float("nan"))


def test_a_model_with_non_finite_parameters_is_never_saved(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Before: a run gone NaN saved that state as its latest.pt."""
    runtime = build_runtime(
        tmp_path,
        trainer=PoisonTrainer(min_new_steps=10_000),
        api=True,
        max_uptime=None,
        checkpoint_dir=tmp_path / "c",
    )

    def script(client: Client) -> None:
        wait_for(lambda: runtime.trainer.runs >= 1, "a training run")
        number = client.call("POST", "/api/save")["save_request"]
        body = client.wait_for_status(
            lambda s: (
                s["checkpoint"]["save"] is not None
                and s["checkpoint"]["save"]["number"] >= number
                and s["checkpoint"]["save"]["state"] == "failed"
            ),
            "the save is refused",
        )
        error = str(body["checkpoint"]["save"]["error"])
        assert "refusing to save" in error and str(tmp_path / "c") in error
        assert "models.brightness: weight of its training copy is not finite (nan)" in error
        client.call("POST", "/api/shutdown")

    with caplog.at_level(logging.INFO):
        assert run_with(runtime, script) == 0
    assert saved_files(tmp_path / "c") == [], "neither the requested nor the final save"
