"""Run folders as a run leaves them, written with the runtime's own event writer.

No run is launched: each test writes just the files it needs (``.hydra/overrides.yaml``,
``outcome.json``, real event files from :class:`ami.metrics.EventWriter`) in either
layout of ``tensorboard/``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tensorboard.compat.proto.event_pb2 import Event
from tensorboard.compat.proto.summary_pb2 import Summary

from ami.metrics import EventWriter

THREADS = ("main", "inference", "training")


def writer(tensorboard: Path, thread: str, layout: str) -> EventWriter:
    """The thread's writer: one folder for all (``one``) or a subfolder each (``old``)."""
    if layout == "old":
        return EventWriter(tensorboard / thread)
    return EventWriter(tensorboard, suffix=thread)


def write_run(
    path: Path,
    overrides: Sequence[str] | None = (),
    outcome: str | None = "completed",
    losses: Mapping[str, Sequence[float]] | None = None,
    cells: Sequence[float] | None = None,
    final: Mapping[str, float] | None = None,
    hparams: Mapping[str, float | int | str | bool] | None = None,
    step_times: Sequence[tuple[int, float]] | None = None,
    reason: str | None = None,
    layout: str = "one",
    outcome_metrics: Mapping[str, float] | None = None,
) -> Path:
    """Write one run folder and return it.

    Args:
        path: The run folder (created).
        overrides: ``.hydra/overrides.yaml``'s list; None writes no ``.hydra/``.
        outcome: ``outcome.json``'s outcome; None writes none (a killed run).
        losses: ``trainer -> losses``, one per optimizer step from 1.
        cells: ``inference/world/cells_visited``, one per agent step from 1.
        final: The end-of-run scalars (tag -> value), written by the main thread; also
            ``outcome.json``'s metrics.
        hparams: The run's hparams summary.
        step_times: ``(agent step, wall time)`` of ``inference/step_interval`` points.
        reason: ``outcome.json``'s reason.
        layout: ``one`` (one tensorboard/ folder) or ``old`` (a subfolder per thread).
        outcome_metrics: ``outcome.json``'s metrics when they are not ``final``.
    """
    path.mkdir(parents=True, exist_ok=True)
    if overrides is not None:
        (path / ".hydra").mkdir(exist_ok=True)
        listed = "".join(f"- {override}\n" for override in overrides) or "[]\n"
        (path / ".hydra" / "overrides.yaml").write_text(listed)
    tensorboard = path / "tensorboard"
    writers = {thread: writer(tensorboard, thread, layout) for thread in THREADS}
    if hparams:
        writers["main"].hparams(dict(hparams))
    for trainer, values in (losses or {}).items():
        for step, value in enumerate(values, start=1):
            writers["training"].scalar(f"training/{trainer}/loss", value, step)
    for step, value in enumerate(cells or (), start=1):
        writers["inference"].scalar("inference/world/cells_visited", value, step)
    for step, wall_time in step_times or ():
        summary = Summary(value=[Summary.Value(tag="inference/step_interval", simple_value=0.1)])
        # A chosen wall time (the writer stamps "now"): steps/s is computed from it.
        writers["inference"]._write(Event(wall_time=wall_time, step=step, summary=summary))
    if final:
        writers["main"].scalars(dict(final), step=len(cells or ()))
    for made in writers.values():
        made.close()
    if outcome is not None:
        content: dict[str, Any] = {
            "outcome": outcome,
            "exit_code": 1 if outcome == "failed" else 0,
            "reason": reason,
            "overrides": list(overrides or ()),
            "metrics": dict((final or {}) if outcome_metrics is None else outcome_metrics),
            "control_api": None,
        }
        (path / "outcome.json").write_text(json.dumps(content, indent=2))
    return path


def event_file(run: Path, thread: str) -> Path:
    """The run's event file of ``thread`` (either layout)."""
    (found,) = [p for p in (run / "tensorboard").rglob("*tfevents*") if _of(p, run, thread)]
    return found


def _of(path: Path, run: Path, thread: str) -> bool:
    return path.name.endswith("." + thread) or path.parent.name == thread
