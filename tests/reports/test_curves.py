from pathlib import Path

import numpy as np
from reports.fake_runs import write_run

from ami.reports.curves import draw_curves, legend_labels, save, smooth
from ami.reports.summary import collect

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_one_subplot_per_trainer_and_one_for_coverage_with_labels(tmp_path: Path) -> None:
    for job, lr in enumerate(("0.001", "0.0003")):
        write_run(
            tmp_path / "s" / str(job),
            overrides=[f"model.trainers.dynamics.lr={lr}", "max_uptime=8"],
            losses={"dynamics": np.geomspace(10, 0.1, 200).tolist(), "policy": [0.5, -0.2] * 50},
            cells=list(range(1, 300)),
        )
    runs = collect([tmp_path / "s"])

    figure = draw_curves(runs.runs, runs.names)

    assert figure is not None
    assert figure.get_suptitle() == "2 runs"
    axes = figure.axes
    assert [a.get_title() for a in axes] == ["dynamics loss", "policy loss", "coverage"]
    assert [a.get_xlabel() for a in axes] == ["optimizer step", "optimizer step", "agent step"]
    assert [a.get_ylabel() for a in axes] == ["loss", "loss", "cells visited"]
    # Two decades of loss: log scale; a loss that crosses zero cannot be: linear.
    assert [a.get_yscale() for a in axes] == ["log", "linear", "linear"]
    # Raw and smoothed per run and subplot.
    assert [len(a.get_lines()) for a in axes] == [4, 4, 4]
    (legend,) = figure.legends
    assert [text.get_text() for text in legend.get_texts()] == [
        "model.trainers.dynamics.lr=0.001",
        "model.trainers.dynamics.lr=0.0003",
    ]
    png = tmp_path / "summary.png"
    save(figure, png)
    assert png.read_bytes().startswith(PNG_SIGNATURE)
    assert png.stat().st_size > 10_000


def test_without_coverage_there_is_no_coverage_subplot(tmp_path: Path) -> None:
    write_run(tmp_path / "s" / "0", losses={"vae": [3.0, 2.5, 2.0]})
    write_run(tmp_path / "s" / "1", losses={"vae": [3.0, 2.0, 1.5]})
    runs = collect([tmp_path / "s"])

    figure = draw_curves(runs.runs, runs.names)

    assert figure is not None
    assert [a.get_title() for a in figure.axes] == ["vae loss"]
    assert draw_curves(runs.runs, runs.names, title="vae sweep").get_suptitle() == "vae sweep"
    assert figure.axes[0].get_yscale() == "linear"  # within a decade


def test_runs_without_distinguishing_overrides_are_named_by_folder(tmp_path: Path) -> None:
    write_run(tmp_path / "runs" / "r_1", overrides=["seed=1"], losses={"vae": [1.0, 2.0]})
    write_run(tmp_path / "runs" / "r_2", overrides=["seed=1"], losses={"vae": [1.0, 2.0]})
    write_run(tmp_path / "runs" / "r_3", overrides=[], outcome="failed")
    runs = collect([tmp_path / "runs"])

    labels = legend_labels(runs.runs, runs.names)
    figure = draw_curves(runs.runs, runs.names)

    assert list(labels.values()) == ["r_1: seed=1", "r_2: seed=1", "r_3"]
    assert figure is not None
    # The failed run drew nothing: no legend entry without a line.
    assert [t.get_text() for t in figure.legends[0].get_texts()] == ["r_1: seed=1", "r_2: seed=1"]


def test_no_curves_no_figure(tmp_path: Path) -> None:
    write_run(tmp_path / "s" / "0", outcome="failed")
    runs = collect([tmp_path / "s"])

    assert draw_curves(runs.runs, runs.names) is None


def test_smoothing_is_light_and_keeps_a_step_visible() -> None:
    values = np.array([1.0] * 200 + [0.0] * 200)

    smoothed = smooth(values)

    assert smoothed[0] == 1.0  # debiased: no ramp up from zero
    assert smoothed[199] == 1.0
    assert smoothed[230] < 0.01  # the drop shows within a few percent of the curve
    assert smoothed[201] > 0.0  # but it is smoothed
    assert np.isnan(smooth(np.array([1.0, np.nan, 3.0]))[1])  # a gap stays a gap
