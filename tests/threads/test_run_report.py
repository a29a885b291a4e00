import logging
from pathlib import Path
from typing import Any

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from ami.metrics import EventWriter
from ami.threads.run_report import RunReport


def status(steps: int, loss: float | None = 0.25, cells: float | None = 12.0) -> dict[str, Any]:
    world = {} if cells is None else {"cells_visited": cells}
    return {
        "status": "active",
        "threads": {
            "inference": {"steps": steps, "overruns": 2, "interval": 0.1, "world": world},
            "training": {
                "trainers": {
                    "dynamics": {
                        "runs": 3,
                        "optimizer_steps": 48,
                        "loss": loss,
                        "loss_final": None if loss is None else loss + 0.01,
                        "loss_best": None if loss is None else loss - 0.01,
                    }
                },
                "buffers": {"experience": 300},
            },
        },
        "collector": {"appended": steps, "pending": 0, "dropped": 0},
    }


def test_the_progress_line_says_what_a_researcher_checks() -> None:
    report = RunReport(progress_every=10.0)
    report.start(100.0)
    line = report.progress_line(110.0, status(100))
    assert line.startswith("up 10s | active | agent 100 steps (10.0/s), 2 overruns")
    assert "dynamics 48 steps, loss 0.25" in line
    assert "buffer experience 300" in line
    # Steps per second are those since the previous line, not since the start.
    assert "(5.0/s)" in report.progress_line(120.0, status(150))


def test_a_trainer_without_a_step_says_so() -> None:
    report = RunReport(progress_every=10.0)
    report.start(0.0)
    assert "dynamics 48 steps, no step yet" in report.progress_line(1.0, status(5, loss=None))


def test_progress_lines_are_logged_when_due_and_not_before(
    caplog: pytest.LogCaptureFixture,
) -> None:
    report = RunReport(progress_every=10.0)
    report.start(0.0)
    assert report.seconds_to_next(4.0) == pytest.approx(6.0)
    with caplog.at_level(logging.INFO, logger="ami.threads.run_report"):
        report.tick(5.0, status(50))
        assert not caplog.records
        report.tick(10.0, status(100))
    assert caplog.records[0].getMessage().startswith("progress: up 10s")
    assert report.seconds_to_next(10.0) == pytest.approx(10.0)


def test_no_progress_line_leaves_the_loop_asleep() -> None:
    report = RunReport(progress_every=None)
    report.start(0.0)
    assert report.seconds_to_next(1.0) is None


def test_a_broken_status_costs_a_warning_not_the_run(caplog: pytest.LogCaptureFixture) -> None:
    report = RunReport(progress_every=1.0)
    report.start(0.0)
    with caplog.at_level(logging.WARNING):
        report.tick(2.0, {"threads": {"inference": {"steps": "many"}}})
    assert "progress report failed" in caplog.text


def test_the_end_of_run_numbers_are_returned_and_charted(tmp_path: Path) -> None:
    writer = EventWriter(tmp_path)
    report = RunReport(writer, progress_every=None)
    report.start(0.0)
    metrics = report.finish(20.0, status(200), "completed")
    assert metrics == {
        "training/dynamics/loss_final": pytest.approx(0.26),
        "training/dynamics/loss_best": pytest.approx(0.24),
        "training/dynamics/optimizer_steps": 48.0,
        "inference/steps": 200.0,
        "inference/steps_per_second": pytest.approx(10.0),
        "inference/overruns_total": 2.0,
        "inference/world/cells_visited_final": 12.0,
        "run/uptime_seconds": 20.0,
        "run/outcome_code": 0.0,
    }
    events = EventAccumulator(str(tmp_path), size_guidance={"scalars": 0})
    events.Reload()
    (point,) = events.Scalars("training/dynamics/loss_final")
    assert point.step == 200 and point.value == pytest.approx(0.26)


def test_a_world_without_cells_and_a_trainer_without_steps_leave_those_numbers_out() -> None:
    report = RunReport(progress_every=None)
    report.start(0.0)
    metrics = report.finish(1.0, status(3, loss=None, cells=None), "interrupted")
    assert "inference/world/cells_visited_final" not in metrics
    assert "training/dynamics/loss_final" not in metrics
    assert metrics["run/outcome_code"] == 1.0


def test_bad_intervals_are_refused_naming_the_key() -> None:
    with pytest.raises(ValueError, match=r"threads\.progress_every"):
        RunReport(progress_every=0)
    with pytest.raises(ValueError, match=r"threads\.resources_every"):
        RunReport(resources_every=-1)
