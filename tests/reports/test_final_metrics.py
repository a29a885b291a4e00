from pathlib import Path

import pytest
from reports.fake_runs import write_run

from ami.reports import read_run
from ami.reports.final_metrics import final_metrics, trainers

END_OF_RUN = {
    "training/dynamics/loss_final": 0.25,
    "training/policy/loss_final": -0.5,
    "inference/steps_per_second": 9.5,
    "inference/overruns_total": 3.0,
    "inference/world/cells_visited_final": 42.0,
    "run/uptime_seconds": 61.0,
}


def test_the_end_of_run_scalars_are_the_key_numbers(tmp_path: Path) -> None:
    run = write_run(
        tmp_path / "run",
        losses={"dynamics": [9.0] * 60, "policy": [7.0] * 60},
        final=END_OF_RUN,
        outcome_metrics={},
    )

    metrics = final_metrics(read_run(run))

    assert metrics == END_OF_RUN  # not the means of the charts (9.0, 7.0)


def test_outcome_json_supplies_what_the_event_files_lack(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run", losses={"dynamics": [9.0] * 10}, outcome_metrics=END_OF_RUN)

    metrics = final_metrics(read_run(run))

    assert metrics["training/dynamics/loss_final"] == 0.25
    assert metrics["inference/steps_per_second"] == 9.5


def test_a_killed_run_gets_its_numbers_from_its_charts(tmp_path: Path) -> None:
    losses = [100.0] * 30 + [float(i) for i in range(50)]  # mean of the last 50: 24.5
    run = write_run(
        tmp_path / "run",
        outcome=None,
        losses={"dynamics": losses, "policy": [1.0, 3.0]},
        cells=[1, 4, 4, 9],
        step_times=[(1, 1000.0), (21, 1002.0), (41, 1004.0)],
    )
    data = read_run(run)

    metrics = final_metrics(data)

    assert trainers(data) == ["dynamics", "policy"]
    assert metrics["training/dynamics/loss_final"] == pytest.approx(24.5)
    assert metrics["training/policy/loss_final"] == pytest.approx(2.0)  # fewer than 50
    assert metrics["inference/world/cells_visited_final"] == 9.0
    assert metrics["inference/steps_per_second"] == pytest.approx(10.0)  # 40 steps in 4 s
    assert data.events.first_wall_time is not None
    assert data.events.last_wall_time is not None
    assert metrics["run/uptime_seconds"] == pytest.approx(
        data.events.last_wall_time - data.events.first_wall_time
    )
    assert "inference/overruns_total" not in metrics  # never charted: left blank, not 0


def test_a_run_that_failed_at_start_has_no_numbers(tmp_path: Path) -> None:
    run = tmp_path / "run"
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "overrides.yaml").write_text("- seed=1\n")

    assert final_metrics(read_run(run)) == {}
