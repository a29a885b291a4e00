"""Checkpoints: saved when a run stops and on request, restored with resume_from."""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from pathlib import Path

import pytest
import torch
from runtime_parts import BrightnessTrainer, build_runtime

from ami.checkpoints import resolve

pytestmark = [pytest.mark.usefixtures("keep_main_thread_name"), pytest.mark.timeout(60)]


def test_a_stopped_run_saves_and_the_next_resumes_from_it(tmp_path: Path) -> None:
    first = build_runtime(tmp_path / "one", max_uptime=1.0, checkpoint_dir=tmp_path / "ckpt")
    assert first.main.run() == 0
    saved = resolve(tmp_path / "ckpt")
    weights = torch.load(saved, weights_only=True)["models"]["brightness"]
    published = first.models._current.models["brightness"].module.state_dict()
    for name, value in weights.items():
        assert torch.equal(published[name], value), "the last sync published what was saved"
    steps, runs = first.trainer.global_step, first.trainer.runs
    assert steps > 0

    trainer = BrightnessTrainer(min_new_steps=10_000)  # no new run: state stays as loaded
    second = build_runtime(
        tmp_path / "two", trainer=trainer, max_uptime=0.5, resume_from=tmp_path / "ckpt"
    )
    assert second.main.run() == 0
    restored = second.models._current.models["brightness"].module.state_dict()
    for name, value in weights.items():
        assert torch.equal(restored[name], value), "resumed weights reach the inference copy"
    assert (trainer.global_step, trainer.runs) == (steps, runs)
    optimizer_state = trainer.optimizer.state_dict()["state"]
    assert optimizer_state and all(int(s["step"]) == steps for s in optimizer_state.values())
    assert saved.name == "latest.pt"


def test_resume_from_a_wrong_place_or_experiment_fails_clearly(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"resume_from='.*nowhere'"):
        resolve(tmp_path / "nowhere")
    first = build_runtime(tmp_path / "one", max_uptime=0.5, checkpoint_dir=tmp_path / "ckpt")
    assert first.main.run() == 0
    state = torch.load(resolve(tmp_path / "ckpt"), weights_only=True)
    state["models"]["other"] = state["models"].pop("brightness")
    torch.save(state, tmp_path / "ckpt" / "latest.pt")
    second = build_runtime(tmp_path / "two", max_uptime=5.0, resume_from=tmp_path / "ckpt")
    assert second.main.run() == 1
    error = second.training.error
    assert isinstance(error, ValueError)
    assert "models ['other']" in str(error) and "['brightness']" in str(error)


def test_a_failed_training_thread_leaves_the_last_checkpoint_alone(tmp_path: Path) -> None:
    trainer = BrightnessTrainer(fail_at_run=2)
    runtime = build_runtime(
        tmp_path, trainer=trainer, max_uptime=10.0, checkpoint_dir=tmp_path / "ckpt"
    )
    assert runtime.main.run() == 1
    assert not (tmp_path / "ckpt" / "latest.pt").exists()


def test_post_api_save_writes_a_checkpoint_while_running(tmp_path: Path) -> None:
    runtime = build_runtime(tmp_path, api=True, max_uptime=30.0, checkpoint_dir=tmp_path / "ckpt")
    seen: dict[str, object] = {}

    def client() -> None:
        while not (runtime.main.api and runtime.main.api._server and runtime.main._started_at):
            time.sleep(0.01)
        url = runtime.main.api.url
        json_post = {"Content-Type": "application/json"}
        request = urllib.request.Request(
            url + "/api/save", method="POST", data=b"", headers=json_post
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            seen["request"] = json.loads(response.read())["save_request"]
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with urllib.request.urlopen(url + "/api/status", timeout=5) as response:
                training = json.loads(response.read())["threads"]["training"]
            if training["saves_served"] >= 1:
                seen["checkpoint"] = training["checkpoint"]
                seen["exists"] = Path(training["checkpoint"]).is_file()
                break
            time.sleep(0.05)
        shutdown = urllib.request.Request(
            url + "/api/shutdown", method="POST", data=b"", headers=json_post
        )
        urllib.request.urlopen(shutdown, timeout=5).close()

    thread = threading.Thread(target=client, name="client", daemon=True)
    thread.start()
    assert runtime.main.run() == 0
    thread.join(10)
    assert seen["request"] == 1
    assert seen["exists"] is True
    assert str(seen["checkpoint"]).endswith("latest.pt")
