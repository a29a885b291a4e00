"""One job of a sweep: run it, stop the sweep when it was interrupted, hand back its objective.

Hydra's launchers call the task function once per job and differ in what they do
with what it raises (found in their code, hydra-core 1.3, plugins 1.2/1.3):

- ``run_job`` (every launcher) records an ``Exception`` as a failed job and lets a
  ``BaseException`` (``KeyboardInterrupt``) through; the basic sweeper then re-raises
  the first failed job's exception once the batch is done, so the sweep's process
  exits 1 with a traceback and no word about the other jobs. A failed run is therefore
  not raised here (the sweep's summary names it), except as the Optuna objective.
- The basic launcher runs the jobs in the sweep's own process, one after another:
  raising :class:`SweepInterrupted` (a ``KeyboardInterrupt``) after an interrupted run
  ends the loop, so no further job starts.
- joblib (loky) and submitit run each job in another process, which must not raise a
  ``BaseException``: loky sends it back and joblib then kills every worker. There an
  interrupted job writes the sweep's stop file instead (:mod:`ami.sweeps.stop`).
- The Optuna sweeper takes the return value as the trial's objective: an exception
  makes the trial FAIL with the exception's message in its warning, and so do
  ``None`` ("must be float-castable") and NaN (optuna refuses it); so every case
  without a number raises :class:`ObjectiveUnavailable`, which says why.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import signal
import threading
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

from omegaconf import DictConfig

from ami.sweeps.state import JOBS_TAKE_SIGINT_ENV, current
from ami.sweeps.stop import request_stop, stop_reason

logger = logging.getLogger(__name__)


class SweepInterrupted(KeyboardInterrupt):
    """Ends a sweep whose jobs run in its own process (the basic launcher).

    A ``KeyboardInterrupt``, so that Hydra's ``run_job`` does not record it as a failed
    job and go on: it reaches ``scripts/launch.py``, which prints the summary.
    """


class JobNotStarted(RuntimeError):
    """An Optuna trial that did not run because the sweep was stopped."""


class ObjectiveUnavailable(RuntimeError):
    """An Optuna trial whose run gave no finite ``optimized_metric``; says why."""


class Outcome(Protocol):
    """What a job needs of :class:`ami.experiment.RunOutcome`."""

    @property
    def outcome(self) -> str: ...  # noqa: D102

    @property
    def reason(self) -> str | None: ...  # noqa: D102

    @property
    def metrics(self) -> Any: ...  # noqa: D102


RunFunction = Callable[[DictConfig, Path, Callable[[], str | None]], Outcome]
"""Runs the experiment (:func:`ami.experiment.run_outcome`); the third argument is asked
by the run's main loop for a reason to stop (the sweep's stop file)."""

HYDRA_FILES = {".hydra", "main.log", "inference.log", "training.log"}
"""What a job folder holds before its run starts (Hydra's records, empty logs)."""


def sweep_job(cfg: DictConfig, output_dir: Path, run: RunFunction) -> float | None:
    """Run one job of a sweep (the task function's body under ``-m``).

    Args:
        cfg: The job's config.
        output_dir: The job's folder, ``<sweep dir>/<job num>``.
        run: Runs the experiment and records ``outcome.json``
            (:func:`ami.experiment.run_outcome`).

    Returns:
        The run's ``optimized_metric`` when the config names one (the Optuna sweeper's
        objective), else None.

    Raises:
        SweepInterrupted: The run was interrupted, or the sweep was stopped before it
            started, and the jobs run in this process: no further job may start.
        JobNotStarted: The sweep was stopped before this trial started (Optuna).
        ObjectiveUnavailable: No finite ``optimized_metric``, and why (Optuna).
    """
    from hydra.core.hydra_config import HydraConfig

    hydra_cfg = HydraConfig.get()
    objective = cfg.get("optimized_metric")
    return run_job(
        cfg,
        output_dir,
        run,
        sweep_dir=Path(os.path.abspath(str(hydra_cfg.sweep.dir))),
        name=f"job #{hydra_cfg.job.num}",
        objective=None if objective is None else str(objective),
    )


def run_job(
    cfg: DictConfig,
    output_dir: Path,
    run: RunFunction,
    sweep_dir: Path,
    name: str,
    objective: str | None,
) -> float | None:
    """:func:`sweep_job` with the sweep's folder, the job's name and objective given."""
    sweep = current()
    in_sweep_process = sweep is not None and sweep.pid == os.getpid()

    reason = stop_reason(sweep_dir)
    if reason is not None:
        logger.info("%s not started: the sweep was stopped (%s)", name, reason)
        discard_unstarted(output_dir)
        if in_sweep_process:
            raise SweepInterrupted(f"{name} not started: {reason}")
        if objective is not None:
            raise JobNotStarted(f"{name} not started: the sweep was stopped ({reason})")
        return None

    asked: list[str] = []

    def stop_file() -> str | None:
        """The run's main loop asks this twice a second: no thread of our own."""
        reason = None if signals.stopping() else stop_reason(sweep_dir)
        if reason is not None and not asked:
            asked.append(reason)
        return reason

    with _signals_for_the_run() as signals:
        try:
            outcome = run(cfg, output_dir, stop_file)
        finally:
            signals.run_ended()

    if outcome.outcome == "interrupted":
        if signals.came() or asked or in_sweep_process:
            if asked:
                cause = "the sweep was asked to stop"
            elif signals.came():
                cause = "Ctrl+C"
            else:
                cause = "time limit" if signals.time_limit() else "SIGTERM"
            request_stop(sweep_dir, f"{name} was interrupted ({cause})")
        if in_sweep_process:
            raise SweepInterrupted(f"{name} was interrupted")
    if objective is None:
        return None
    return objective_value(outcome, objective, name, output_dir)


def objective_value(outcome: Outcome, metric: str, name: str, output_dir: Path) -> float:
    """The run's value of ``metric``, or ObjectiveUnavailable saying why there is none."""
    log = output_dir / "main.log"
    if outcome.outcome != "completed":
        detail = f": {outcome.reason}" if outcome.reason else ""
        raise ObjectiveUnavailable(
            f"{name} {outcome.outcome}{detail}; no {metric} to report (log: {log})"
        )
    metrics = dict(outcome.metrics)
    if metric not in metrics:
        known = ", ".join(sorted(metrics)) or "none"
        raise ObjectiveUnavailable(
            f"{name}: optimized_metric={metric!r} is not among the run's end-of-run "
            f"metrics ({known}); a trainer's loss_final needs at least one optimizer "
            f"step: run longer (max_uptime) or check the trainer's name (log: {log})"
        )
    value = float(metrics[metric])
    if not math.isfinite(value):
        raise ObjectiveUnavailable(f"{name}: {metric} is {value} (diverged?) (log: {log})")
    return value


def discard_unstarted(output_dir: Path) -> None:
    """Remove a job folder that holds only what Hydra wrote before the job began.

    A job that never ran leaves no folder, as under the basic launcher, where the
    sweep ends before Hydra makes the next one; anything else in it is kept.
    """
    try:
        entries = {entry.name for entry in output_dir.iterdir()}
        if entries <= HYDRA_FILES:
            shutil.rmtree(output_dir)
    except OSError as error:  # e.g. Windows keeps open log files
        logger.warning("could not remove the unstarted job's folder %s: %s", output_dir, error)


class _RunSignals:
    """Which signal stopped this job's run, and whether one still stops it."""

    def __init__(self) -> None:
        self._ctrl_c = threading.Event()
        self._time_limit = threading.Event()
        self._running = True

    def came(self) -> bool:
        """Whether Ctrl+C (SIGINT) reached the job."""
        return self._ctrl_c.is_set()

    def time_limit(self) -> bool:
        """Whether submitit's time-limit or preemption signal reached the job."""
        return self._time_limit.is_set()

    def stopping(self) -> bool:
        """Whether one of them already stopped the run."""
        return self.came() or self.time_limit()

    def run_ended(self) -> None:
        self._running = False

    def on_sigint(self, signum: int, frame: types.FrameType | None) -> None:
        self._ctrl_c.set()
        if self._running:  # after the run, a late Ctrl+C must not fail a finished job
            raise KeyboardInterrupt

    def on_time_limit(self, signum: int, frame: types.FrameType | None) -> None:
        if self.stopping():  # once: a second one must not cut the orderly stop short
            return
        self._time_limit.set()
        if self._running:
            logger.warning(
                "%s: the job's time limit is near or it is preempted; stopping cleanly",
                signal.Signals(signum).name,
            )
            raise KeyboardInterrupt


def _submitit_time_limit_signal() -> signal.Signals | None:
    """The signal submitit sends before a job's time limit or at preemption, if it runs us."""
    if not os.environ.get("SUBMITIT_EXECUTOR"):
        return None
    name = "SIG" + os.environ.get("SUBMITIT_PREEMPT_SIGNAL", "USR2")
    found = getattr(signal, name, None)
    return found if isinstance(found, signal.Signals) else None


@contextmanager
def _signals_for_the_run() -> Iterator[_RunSignals]:
    """SIGINT stops the run (and is recorded) while the job runs; as before afterwards.

    A job process of joblib or submitit_local inherits SIGINT ignored from the sweep's
    process (see :mod:`ami.sweeps.monitor`): it takes Ctrl+C only during its run, so
    that an idle worker or submitit's job controller never dies of it. A SIGINT that
    was ignored for another reason (a background job of a shell) stays ignored.

    Under submitit, its time-limit signal (SIGUSR2, ``signal_delay_s`` before the limit,
    or at preemption) stops the run cleanly too, with its final checkpoint and
    ``interrupted`` in outcome.json. submitit's own handler would raise or exit in the
    middle of the run (no outcome.json), or requeue the job to start again from zero.
    """
    state = _RunSignals()
    if threading.current_thread() is not threading.main_thread():
        yield state
        return
    previous: dict[int, Any] = {}
    current_sigint = signal.getsignal(signal.SIGINT)
    if current_sigint != signal.SIG_IGN or os.environ.get(JOBS_TAKE_SIGINT_ENV) == "1":
        previous[signal.SIGINT] = signal.signal(signal.SIGINT, state.on_sigint)
    time_limit = _submitit_time_limit_signal()
    if time_limit is not None:
        previous[time_limit] = signal.signal(time_limit, state.on_time_limit)
    try:
        yield state
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
