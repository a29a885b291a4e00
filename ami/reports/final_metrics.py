"""A run's key numbers: from its end-of-run scalars, else rebuilt from its charts.

A run that ends writes its key numbers once (``training/<trainer>/loss_final``,
``inference/steps_per_second``...; README "Sweeps") into its event files and into
``outcome.json``. A run that was killed, or one written before those numbers existed,
has only its per-step charts; the same numbers are rebuilt from those, by the same
definitions, so that every row of a sweep can be compared.
"""

from __future__ import annotations

import re

import numpy as np

from ami.reports.run_data import RunData

LOSS_WINDOW = 50
"""``loss_final`` is the mean loss of a trainer's last this many optimizer steps."""

STEPS_PER_SECOND = "inference/steps_per_second"
OVERRUNS = "inference/overruns_total"
CELLS_VISITED = "inference/world/cells_visited_final"
UPTIME = "run/uptime_seconds"

_TRAINER_TAG = re.compile(r"^training/([^/]+)/(?:loss|loss_final)$")


def trainers(run: RunData) -> list[str]:
    """The trainers a run charted or recorded a final loss for, in name order."""
    tags = [*run.events.scalars, *run.outcome_metrics]
    return sorted({match.group(1) for tag in tags if (match := _TRAINER_TAG.match(tag))})


def loss_tag(trainer: str) -> str:
    """The per-step loss chart of a trainer."""
    return f"training/{trainer}/loss"


def final_loss_tag(trainer: str) -> str:
    """The end-of-run loss of a trainer."""
    return f"training/{trainer}/loss_final"


def final_metrics(run: RunData) -> dict[str, float]:
    """``tag -> number`` for each trainer's final loss, steps/s, overruns, cells, uptime.

    Tags a run has no data for are left out (a failed run may have none at all).
    """
    found: dict[str, float] = {}
    for trainer in trainers(run):
        loss = _recorded(run, final_loss_tag(trainer))
        if loss is None:
            loss = _mean_of_last(run, loss_tag(trainer), LOSS_WINDOW)
        if loss is not None:
            found[final_loss_tag(trainer)] = loss
    fallbacks = {
        STEPS_PER_SECOND: _steps_per_second,
        OVERRUNS: lambda r: _last(r, "inference/overruns"),  # charted as a running count
        CELLS_VISITED: lambda r: _last(r, "inference/world/cells_visited"),
        UPTIME: _uptime,
    }
    for tag, fallback in fallbacks.items():
        value = _recorded(run, tag)
        if value is None:
            value = fallback(run)
        if value is not None:
            found[tag] = value
    return found


def _recorded(run: RunData, tag: str) -> float | None:
    series = run.events.scalars.get(tag)
    if series is not None and len(series):
        return series.last
    return run.outcome_metrics.get(tag)


def _last(run: RunData, tag: str) -> float | None:
    series = run.events.scalars.get(tag)
    return series.last if series is not None and len(series) else None


def _mean_of_last(run: RunData, tag: str, count: int) -> float | None:
    series = run.events.scalars.get(tag)
    if series is None or not len(series):
        return None
    return float(np.mean(series.values[-count:]))


def _steps_per_second(run: RunData) -> float | None:
    """Agent steps over the seconds between the first and the last charted step."""
    series = run.events.scalars.get("inference/step_interval")
    if series is None or len(series) < 2:
        return None
    seconds = float(series.wall_times[-1] - series.wall_times[0])
    steps = int(series.steps[-1] - series.steps[0])
    return steps / seconds if seconds > 0 else None


def _uptime(run: RunData) -> float | None:
    """Seconds between the first and the last event the run wrote."""
    first, last = run.events.first_wall_time, run.events.last_wall_time
    if first is None or last is None:
        return None
    return last - first
