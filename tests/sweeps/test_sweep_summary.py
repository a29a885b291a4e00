"""The lines a sweep ends with, read from its job folders, and the exit code they imply."""

from __future__ import annotations

import json
from pathlib import Path

from ami.sweeps.stop import request_stop
from ami.sweeps.summary import summarize


def write_job(
    sweep_dir: Path, num: int, outcome: str | None, *overrides: str, **extra: object
) -> None:
    folder = sweep_dir / str(num)
    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra" / "overrides.yaml").write_text("".join(f"- {item}\n" for item in overrides))
    if outcome is not None:
        record = {"outcome": outcome, "overrides": list(overrides), "reason": None, "metrics": {}}
        record.update(extra)
        (folder / "outcome.json").write_text(json.dumps(record))


def test_a_completed_sweep_exits_0_showing_what_told_its_jobs_apart(tmp_path: Path) -> None:
    write_job(tmp_path, 0, "completed", "max_uptime=60", "model.trainers.dynamics.lr=0.001")
    write_job(tmp_path, 1, "completed", "max_uptime=60", "model.trainers.dynamics.lr=0.0003")
    summary = summarize(tmp_path, expected_jobs=2)
    assert summary.exit_code == 0
    lines = summary.text.splitlines()
    assert lines[1].split() == ["completed", "#0", "model.trainers.dynamics.lr=0.001"]
    assert lines[2].split() == ["completed", "#1", "model.trainers.dynamics.lr=0.0003"]
    assert lines[-1] == "Jobs: 2 completed"


def test_a_failed_job_makes_the_sweep_exit_1_naming_it_its_reason_and_log(tmp_path: Path) -> None:
    write_job(tmp_path, 0, "completed", "seed=0")
    write_job(tmp_path, 1, "failed", "seed=1", reason="ValueError: boom\n  more lines")
    summary = summarize(tmp_path, expected_jobs=2)
    assert summary.exit_code == 1
    assert "failed       #1  seed=1: ValueError: boom" in summary.text
    assert "more lines" not in summary.text
    assert f"log: {tmp_path / '1' / 'main.log'}" in summary.text
    assert summary.text.splitlines()[-1] == "Jobs: 1 completed, 1 failed"


def test_an_interrupted_sweep_exits_0_counting_the_jobs_never_started(tmp_path: Path) -> None:
    write_job(tmp_path, 0, "completed", "seed=0")
    write_job(tmp_path, 1, "interrupted", "seed=1")
    request_stop(tmp_path, "job #1 was interrupted (Ctrl+C)")
    summary = summarize(tmp_path, expected_jobs=4, sweep_error=True)
    assert summary.exit_code == 0
    assert summary.text.splitlines()[0].endswith("stopped (job #1 was interrupted (Ctrl+C))")
    assert "not started  2 of 4 jobs" in summary.text
    assert summary.text.splitlines()[-1] == "Jobs: 1 completed, 1 interrupted, 2 not started"


def test_a_job_folder_without_outcome_is_reported_as_killed_and_fails_the_sweep(
    tmp_path: Path,
) -> None:
    write_job(tmp_path, 0, None, "seed=0")
    summary = summarize(tmp_path, expected_jobs=1, interrupted=True)
    assert summary.exit_code == 1
    assert "unfinished   #0  seed=0: no outcome.json (killed, or still running)" in summary.text


def test_an_error_of_the_sweep_itself_fails_it_unless_it_was_stopped(tmp_path: Path) -> None:
    write_job(tmp_path, 0, "completed", "seed=0")
    assert summarize(tmp_path, sweep_error=True).exit_code == 1
    assert summarize(tmp_path, sweep_error=True, interrupted=True).exit_code == 0


def test_the_objective_is_shown_beside_each_completed_job(tmp_path: Path) -> None:
    metric = "training/dynamics/loss_final"
    write_job(tmp_path, 0, "completed", "seed=0", metrics={metric: 0.125})
    write_job(tmp_path, 1, "completed", "seed=1", metrics={metric: None})
    text = summarize(tmp_path, objective=metric).text
    assert f"({metric} 0.125)" in text
    assert f"({metric} missing)" in text
