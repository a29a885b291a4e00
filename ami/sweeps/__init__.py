"""Sweeps that stop and report truthfully, with any launcher.

- :mod:`ami.sweeps.job`: one job's run; an interrupted run stops the whole sweep, a
  failed one is reported, the Optuna objective comes back (or why it cannot).
- :mod:`ami.sweeps.monitor`: the Hydra callback that sets the sweep's own process up
  for Ctrl+C, per launcher.
- :mod:`ami.sweeps.stop`: the stop file through which one Ctrl+C reaches every job.
- :mod:`ami.sweeps.summary`: the lines a sweep ends with, and its exit code.

``scripts/launch.py`` calls :func:`launch_and_report` around Hydra's main.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from ami.sweeps.job import JobNotStarted, ObjectiveUnavailable, SweepInterrupted, sweep_job
from ami.sweeps.monitor import SweepMonitor, restore_signals
from ami.sweeps.state import current
from ami.sweeps.summary import summarize

__all__ = [
    "JobNotStarted",
    "ObjectiveUnavailable",
    "SweepInterrupted",
    "SweepMonitor",
    "launch_and_report",
    "sweep_job",
]


def launch_and_report(main: Callable[[], object]) -> int:
    """Call Hydra's ``main``; after a sweep print its summary. Returns the exit code.

    A single run keeps its own exit code (0 clean or interrupted, 1 failed). A sweep
    exits 0 when its jobs completed or it was stopped by Ctrl+C, 1 when a job failed.
    """
    code = 0
    interrupted = False
    try:
        main()
    except SystemExit as exit:
        code = _exit_code(exit)
    except KeyboardInterrupt:  # SweepInterrupted, or Ctrl+C between two jobs
        interrupted = True
    sweep = current()
    if sweep is None:
        if interrupted:
            print("interrupted before the run started", file=sys.stderr)
        return code
    restore_signals(sweep)
    summary = summarize(
        sweep.sweep_dir,
        expected_jobs=sweep.expected_jobs,
        interrupted=interrupted,
        sweep_error=code != 0,
        objective=sweep.objective,
    )
    print(summary.text, flush=True)
    return summary.exit_code


def _exit_code(exit: SystemExit) -> int:
    if exit.code is None:
        return 0
    if isinstance(exit.code, int):
        return exit.code
    print(exit.code, file=sys.stderr)  # SystemExit("message"), as Python would print it
    return 1
