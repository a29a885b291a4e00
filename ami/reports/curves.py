"""One PNG with every run's loss curves (a subplot per trainer) and coverage curve.

The raw points are drawn faint and a light moving average over them, so that both the
trend and the noise stay visible. A loss subplot whose losses span more than a decade
gets a log y axis (the early losses would otherwise flatten the rest). Each run keeps one colour
in every subplot and one legend entry, named by the overrides that set it apart from
the others (by its folder when nothing does).

Drawn on a bare :class:`matplotlib.figure.Figure` with the Agg canvas: no display, no
pyplot state, nothing global changed for the caller.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from ami.reports import final_metrics as fm
from ami.reports.event_reading import Series
from ami.reports.run_data import RunData

COVERAGE_TAG = "inference/world/cells_visited"
"""The simulated world's count of grid cells the agent has entered, per agent step."""

SMOOTHING_POINTS = 40
"""The moving average spans about 1/40 of a curve's points: light, whatever its length."""


def draw_curves(
    runs: Sequence[RunData], names: dict[Path, str], title: str | None = None
) -> Figure | None:
    """The figure of every run's curves; None when no run has a loss or coverage chart.

    Args:
        runs: The runs, in legend order.
        names: Each run's name, for runs no override tells apart.
        title: Above the subplots; by default the number of runs.
    """
    trainers = sorted({trainer for run in runs for trainer in fm.trainers(run)})
    panels: list[tuple[str, str, str, str]] = [
        (fm.loss_tag(t), f"{t} loss", "optimizer step", "loss") for t in trainers
    ]
    panels = [panel for panel in panels if any(_has(run, panel[0]) for run in runs)]
    if any(_has(run, COVERAGE_TAG) for run in runs):
        panels.append((COVERAGE_TAG, "coverage", "agent step", "cells visited"))
    if not panels:
        return None

    columns = min(3, len(panels))
    rows = math.ceil(len(panels) / columns)
    figure = Figure(figsize=(5.0 * columns, 3.6 * rows + 0.6), layout="constrained")
    FigureCanvasAgg(figure)
    labels = legend_labels(runs, names)
    colours = _colours(len(runs))
    legend: dict[str, Line2D] = {}
    for index, (tag, heading, xlabel, ylabel) in enumerate(panels):
        axes = figure.add_subplot(rows, columns, index + 1)
        drawn: list[npt.NDArray[np.float64]] = []
        for run, colour in zip(runs, colours, strict=True):
            series = run.events.scalars.get(tag)
            if series is None or not len(series):
                continue
            line = _draw(axes, series, colour)
            legend.setdefault(labels[run.path], line)
            drawn.append(series.values)
        axes.set_title(heading)
        axes.set_xlabel(xlabel)
        axes.set_ylabel(ylabel)
        axes.grid(True, alpha=0.3)
        if tag != COVERAGE_TAG and _spans_decades(drawn):  # a count grows on a linear axis
            axes.set_yscale("log")
    figure.suptitle(title or f"{len(runs)} run{'s' if len(runs) != 1 else ''}")
    figure.legend(
        list(legend.values()),
        list(legend),
        loc="outside lower center",
        ncols=min(len(legend), 3),
        fontsize="small",
    )
    return figure


def save(figure: Figure, path: Path) -> None:
    """Write the figure as a PNG (the parent folder must exist)."""
    figure.savefig(path, format="png", dpi=100)


def legend_labels(runs: Sequence[RunData], names: dict[Path, str]) -> dict[Path, str]:
    """Each run named by the overrides that differ between runs, else by its folder."""
    keys = [
        key
        for key in dict.fromkeys(key for run in runs for key in run.overrides)
        if len({run.overrides.get(key) for run in runs}) > 1
    ]
    labels: dict[Path, str] = {}
    for run in runs:
        parts = [f"{key}={run.overrides[key]}" for key in keys if key in run.overrides]
        labels[run.path] = ", ".join(parts) or names[run.path]
    counts: dict[str, int] = {}
    for label in labels.values():
        counts[label] = counts.get(label, 0) + 1
    return {
        path: label if counts[label] == 1 or label == names[path] else f"{names[path]}: {label}"
        for path, label in labels.items()
    }


def smooth(values: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """An exponential moving average, debiased at the start (as TensorBoard's)."""
    span = max(1, round(len(values) / SMOOTHING_POINTS))
    weight = 1.0 - 2.0 / (span + 1)
    smoothed = np.empty_like(values)
    average, norm = 0.0, 0.0
    for i, value in enumerate(values):
        if not math.isfinite(value):
            smoothed[i] = math.nan  # a gap in the curve; the average carries on
            continue
        average = weight * average + (1.0 - weight) * value
        norm = weight * norm + (1.0 - weight)
        smoothed[i] = average / norm
    return smoothed


def _draw(axes: Axes, series: Series, colour: tuple[float, ...]) -> Line2D:
    values = np.where(np.isfinite(series.values), series.values, np.nan)
    if len(values) > 1:
        axes.plot(series.steps, values, color=colour, alpha=0.25, linewidth=0.8)
        (line,) = axes.plot(series.steps, smooth(values), color=colour, linewidth=1.5)
    else:
        (line,) = axes.plot(series.steps, values, color=colour, marker="o")
    return line


def _has(run: RunData, tag: str) -> bool:
    series = run.events.scalars.get(tag)
    return series is not None and len(series) > 0


def _spans_decades(drawn: Sequence[npt.NDArray[np.float64]]) -> bool:
    """Whether the positive values span more than a factor of ten (and none is <= 0)."""
    if not drawn:
        return False
    values = np.concatenate(drawn)
    values = values[np.isfinite(values)]
    if not len(values) or values.min() <= 0:
        return False
    return bool(values.max() / values.min() > 10.0)


def _colours(count: int) -> list[tuple[float, ...]]:
    if count <= 10:
        palette = colormaps["tab10"]
        return [tuple(palette(i)) for i in range(count)]
    palette = colormaps["tab20" if count <= 20 else "viridis"]
    return [tuple(palette(i / max(1, count - 1))) for i in range(count)]
