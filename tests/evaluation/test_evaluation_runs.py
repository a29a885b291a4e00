"""The evaluation inside a real run: what it withholds, what it charts, what it saves."""

from __future__ import annotations

import threading
from pathlib import Path

import lockstep
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from ami.checkpoints import read
from ami.experiment import build
from ami.experiment_checks import ConfigError

SCHEDULE = [
    "model.evaluation.period=10",
    "model.evaluation.length=5",
    "model.evaluation.sequence_length=5",
]
STEPS = 200


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("evaluated")
    thread = threading.current_thread()
    name = thread.name  # MainThread.run renames it (see keep_main_thread_name)
    try:
        checkpoint = lockstep.run_default(out, STEPS, *SCHEDULE)
    finally:
        thread.name = name
    return out, read(checkpoint)


def scalars(run: Path) -> dict[str, list[float]]:
    events = EventAccumulator(str(run / "tensorboard"), size_guidance={"scalars": 0})
    events.Reload()
    return {
        tag: [event.value for event in events.Scalars(tag)]
        for tag in events.Tags()["scalars"]
        if tag.startswith("eval/")
    }


def test_the_world_model_never_gets_the_held_out_half_but_the_agent_gets_every_step(
    finished_run: tuple[Path, dict],
) -> None:
    _, state = finished_run
    training = state["training"]
    buffers = training["buffers"]

    assert training["steps_taken"] == STEPS - 1  # the curious agent records one step late
    assert buffers["experience"]["total_added"] == 100  # steps 0-4, 10-14, ... of 199
    assert buffers["trajectory"]["total_added"] == STEPS - 1


def test_the_end_of_the_run_charts_prediction_against_copying_and_the_pose_probe(
    finished_run: tuple[Path, dict],
) -> None:
    run, _ = finished_run
    charts = scalars(run)

    for tag in ("prediction_vs_copy", "prediction_error", "copy_error", "probe_r2/position"):
        assert f"eval/{tag}" in charts, sorted(charts)
    assert charts["eval/held_out_steps"][-1] == 99
    assert charts["eval/prediction_vs_copy"][-1] > 0


def test_the_held_out_steps_are_saved_with_the_buffers(finished_run: tuple[Path, dict]) -> None:
    _, state = finished_run
    kept = state["training"]["evaluation"]["hold_out"]["steps"]

    assert [step["index"] for step in kept][:6] == [5, 6, 7, 8, 9, 15]
    assert set(kept[0]["data"]) == {"image", "action", "truth/pose"}


def test_an_evaluation_of_a_buffer_that_does_not_exist_is_refused(tmp_path: Path) -> None:
    cfg = lockstep.compose_default(10, "model.evaluation.withhold_from=[replay]")

    with pytest.raises(ConfigError, match=r"withhold_from names buffer\(s\) \['replay'\]"):
        build(cfg, tmp_path)


def test_the_map_of_visited_cells_is_charted_where_the_run_ended(
    finished_run: tuple[Path, dict],
) -> None:
    run, _ = finished_run
    events = EventAccumulator(str(run / "tensorboard"), size_guidance={"images": 0})
    events.Reload()

    coverage = events.Images("images/world/coverage")

    assert [image.step for image in coverage] == [STEPS]
    assert coverage[0].width > 32 and coverage[0].height > 32


def test_the_last_evaluation_is_among_the_runs_end_of_run_numbers(
    finished_run: tuple[Path, dict],
) -> None:
    run, _ = finished_run
    events = EventAccumulator(str(run / "tensorboard"), size_guidance={"scalars": 0})
    events.Reload()
    final = {tag for tag in events.Tags()["scalars"] if tag.endswith("_final")}
    charts = scalars(run)

    assert {"eval/prediction_vs_copy_final", "eval/probe_r2/position_final"} <= final
    final_value = events.Scalars("eval/prediction_vs_copy_final")[-1].value
    assert final_value == pytest.approx(charts["eval/prediction_vs_copy"][-1])
