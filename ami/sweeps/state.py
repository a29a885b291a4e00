"""What the sweep's own process knows about the sweep it runs (set by the monitor)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

JOBS_TAKE_SIGINT_ENV = "AMI_SWEEP_JOBS_TAKE_SIGINT"
"""Set to 1 in the environment the job processes inherit when the sweep's process
ignores SIGINT for them: each job then takes Ctrl+C during its run."""


@dataclass
class Sweep:
    """The sweep this process runs.

    Attributes:
        sweep_dir: ``hydra.sweep.dir``, absolute: the jobs' folders and the stop file.
        pid: The sweep's process: jobs running in it (the basic launcher) end the sweep
            by raising, the others through the stop file.
        launcher: ``in_process``, ``local_processes``, ``slurm`` or ``other``.
        expected_jobs: How many jobs the sweep means to run, where known.
        objective: ``optimized_metric``, if any.
        previous_handlers: Signal handlers to restore when the sweep ends.
        signals_seen: Ctrl+C / SIGTERM the sweep's process took (its first asks the
            jobs to stop; with SLURM a second Ctrl+C stops waiting for them).
    """

    sweep_dir: Path
    pid: int
    launcher: str
    expected_jobs: int | None = None
    objective: str | None = None
    previous_handlers: dict[int, Any] = field(default_factory=dict)
    signals_seen: int = 0


_current: Sweep | None = None


def current() -> Sweep | None:
    """The sweep this process runs, or None (a single run, or a job's own process)."""
    return _current


def set_current(sweep: Sweep | None) -> None:
    """Record (or forget) the sweep this process runs."""
    global _current
    _current = sweep
