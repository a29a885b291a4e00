"""Resuming with another config: what changes are taken, what is refused before start."""

from __future__ import annotations

import logging
from pathlib import Path

import lockstep
import pytest

from ami.checkpoints import CheckpointStore, read
from ami.experiment import build
from ami.experiment_checks import ConfigError

pytestmark = [
    pytest.mark.usefixtures("keep_main_thread_name"),
    pytest.mark.slow,
    pytest.mark.timeout(300),
]

STEPS = 40


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A checkpoint of the small default experiment after 40 steps of learning."""
    return lockstep.run_default(tmp_path_factory.mktemp("first") / "run", STEPS)


def test_settings_come_from_the_new_config_and_each_change_is_logged(
    checkpoint: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Before: resume_from with a new lr trained at the saved lr, and nothing said so."""
    with caplog.at_level(logging.INFO):
        latest = lockstep.run_default(
            tmp_path, STEPS + 20, f"resume_from={checkpoint}", "model.trainers.dynamics.lr=0.0001"
        )
    assert "model.trainers.dynamics.lr: 0.001 -> 0.0001" in caplog.text
    assert "trainer dynamics: optimizer settings from this run's config" in caplog.text
    state = read(latest)
    groups = state["training"]["trainers"]["dynamics"]["optimizer"]["param_groups"]
    assert {group["lr"] for group in groups} == {0.0001}
    assert state["training"]["trainers"]["dynamics"]["global_step"] > 0
    assert state["inference"]["steps"] == STEPS + 20, "the step count carries on"


def test_another_model_size_is_refused_before_start_naming_the_setting(
    checkpoint: Path, tmp_path: Path
) -> None:
    """Before: torch's 40-line size-mismatch list, after the threads had started."""
    cfg = lockstep.compose_default(STEPS, f"resume_from={checkpoint}", "model.size=medium")
    with pytest.raises(ConfigError) as refused:
        build(cfg, tmp_path)
    message = str(refused.value)
    assert message.startswith(f"cannot resume from {checkpoint}: the saved models do not fit")
    assert "model.size: small -> medium" in message
    assert message.count("\n") == 0, "one line"
    assert not (tmp_path / "tensorboard").exists(), "nothing started"


def test_a_corrupt_checkpoint_is_refused_naming_the_file_and_the_cause(
    checkpoint: Path, tmp_path: Path
) -> None:
    """Before: 64 flipped bytes loaded without complaint and training went NaN."""
    data = bytearray(checkpoint.read_bytes())
    for offset in range(len(data) // 2, len(data) // 2 + 64):
        data[offset] ^= 0xFF
    broken = tmp_path / "broken.ckpt"
    broken.write_bytes(bytes(data))
    cfg = lockstep.compose_default(STEPS, f"resume_from={broken}")
    with pytest.raises(ConfigError, match=rf"resume_from='{broken}'.*{broken}.*checksum mismatch"):
        build(cfg, tmp_path / "run")


def test_resume_from_latest_picks_the_newest_complete_checkpoint_of_the_task(
    tmp_path: Path,
) -> None:
    runs = tmp_path / "logs" / "task" / "runs"
    older = lockstep.run_default(runs / "1", 20)
    newer = lockstep.run_default(runs / "2", 30)
    assert read(newer)["inference"]["steps"] == 30 and older != newer
    cfg = lockstep.compose_default(
        30, "resume_from=latest", f"paths.log_dir={tmp_path / 'logs'}", "task_name=task"
    )
    lockstep.reset()
    assert build(cfg, runs / "3").run() == 0
    latest = CheckpointStore(runs / "3" / "checkpoints").latest()
    assert latest is not None
    resumed = read(latest)
    assert resumed["run"]["resumed_from"] == str(newer)
