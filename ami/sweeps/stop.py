"""The sweep's stop file: how one Ctrl+C reaches every job of a sweep.

Jobs of a joblib or submitit sweep are separate processes, some on other machines.
Ctrl+C in the terminal reaches the local ones, SLURM jobs never see it, and a job that
a worker takes up after the signal has passed would run in full. So whoever learns
that the sweep must stop writes ``<sweep dir>/STOP`` (a job stopped by Ctrl+C, or the
sweep's own process on Ctrl+C or SIGTERM), and every job checks for it: before it
starts (then it does not run) and, while it runs, from the run's own main loop every
half second (``stop_when`` of :class:`ami.threads.main.MainThread`: no thread of its
own), which then stops as Ctrl+C would. ``touch <sweep dir>/STOP`` stops a sweep from
another shell.
"""

from __future__ import annotations

import logging
from pathlib import Path

logger = logging.getLogger(__name__)

STOP_FILE = "STOP"
"""Its name in the sweep directory; its text says who asked and why."""


def stop_path(sweep_dir: Path) -> Path:
    """Where the sweep's stop file is."""
    return sweep_dir / STOP_FILE


def request_stop(sweep_dir: Path, reason: str) -> None:
    """Ask every job of the sweep to stop; the first reason given is kept."""
    path = stop_path(sweep_dir)
    try:
        sweep_dir.mkdir(parents=True, exist_ok=True)
        with path.open("x") as file:
            file.write(reason + "\n")
    except FileExistsError:
        return
    except OSError as error:  # the jobs run on; the caller still stops its own
        logger.error("could not write %s: %s", path, error)
        return
    logger.info("sweep stop requested (%s): %s", path, reason)


def stop_reason(sweep_dir: Path) -> str | None:
    """Why the sweep was asked to stop, or None while it was not."""
    path = stop_path(sweep_dir)
    try:
        return path.read_text().strip() or "stop requested"
    except FileNotFoundError:
        return None
    except OSError:
        return "stop requested" if path.exists() else None
