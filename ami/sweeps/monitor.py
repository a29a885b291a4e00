"""The sweep's own process: how it takes Ctrl+C, and what it knows of the sweep.

:class:`SweepMonitor` is a Hydra callback (``hydra.callbacks`` in ``conf/launch.yaml``);
Hydra calls ``on_multirun_start`` in the sweep's own process before any job starts.
What each launcher does with Ctrl+C in that process, and so what the monitor does:

- basic (jobs in this process, one after another): Ctrl+C reaches the running job,
  which stops cleanly; nothing to change.
- joblib: the ``KeyboardInterrupt`` lands in joblib's wait for results, which then
  terminates every worker: the running jobs die mid-run. Its idle loky workers die of
  SIGINT too (the pool breaks). submitit_local: its job controller turns SIGINT into
  SIGINT and, one second later, SIGKILL for its job. So for these the sweep's process
  ignores SIGINT, and its job processes inherit that: Ctrl+C from the terminal reaches
  every process of the sweep and only a running job's run takes it
  (:mod:`ami.sweeps.job`); it stops cleanly and writes the stop file, so that no
  further job starts. SIGTERM to the sweep's process writes the stop file.
- submitit_slurm: the jobs run elsewhere and never see the terminal's Ctrl+C (the
  plugin's own reaction is to leave, with the jobs running on). Ctrl+C or SIGTERM
  writes the stop file, which the jobs check every half second on the shared
  filesystem; the process waits for them. A second Ctrl+C stops waiting.

The Optuna sweeper (and the basic sweeper with ``max_batch_size``) hands the launcher
one batch after another. The jobs of a stopped sweep do not run, but a process-based
launcher would still start every later batch (worker processes, SLURM submissions
that queue, a FAILED trial each). Hydra accepts launchers only from its
``hydra_plugins`` package, so instead of a subclass the monitor wraps the launcher
class's ``launch`` in the sweep's process (:func:`stop_between_batches`): the stop file
is checked before and after each batch, and the sweep ends there.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import types
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig
from typing_extensions import override

from ami.sweeps.state import JOBS_TAKE_SIGINT_ENV, Sweep, current, set_current
from ami.sweeps.stop import request_stop, stop_path, stop_reason

logger = logging.getLogger(__name__)


class SweepMonitor(Callback):
    """Sets the sweep's process up for Ctrl+C and records the sweep (see the module)."""

    @override
    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        """Check ``optimized_metric``, clear a stale stop file, take over the signals."""
        objective = config.get("optimized_metric")
        if objective is not None:
            check_objective_name(str(objective))
        sweep_dir = Path(os.path.abspath(str(config.hydra.sweep.dir)))
        stale = stop_path(sweep_dir)
        if stale.exists():
            logger.warning("removing %s, left by an earlier sweep in this folder", stale)
            stale.unlink(missing_ok=True)
        sweep = Sweep(
            sweep_dir=sweep_dir,
            pid=os.getpid(),
            launcher=launcher_kind(str(config.hydra.launcher.get("_target_", ""))),
            expected_jobs=expected_jobs(config),
            objective=None if objective is None else str(objective),
        )
        if sweep.launcher != "in_process":
            stop_between_batches(str(config.hydra.launcher.get("_target_", "")))
        take_signals(sweep)
        set_current(sweep)

    @override
    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        """Give the signals back (the summary follows in ``scripts/launch.py``)."""
        sweep = current()
        if sweep is not None:
            restore_signals(sweep)


def launcher_kind(target: str) -> str:
    """How the launcher named by ``_target_`` runs jobs: where Ctrl+C can reach them."""
    name = target.rsplit(".", 1)[-1]
    submitit = "submitit" in target.lower()
    if name == "BasicLauncher":
        return "in_process"
    if "joblib" in target.lower() or (submitit and name.endswith("LocalLauncher")):
        return "local_processes"
    if submitit and name.endswith("SlurmLauncher"):
        return "slurm"
    return "other"


def stop_between_batches(target: str) -> None:
    """Make the launcher class named ``target`` end a stopped sweep between batches.

    Idempotent; a class that cannot be imported is left alone (Hydra reports it).
    """
    from hydra.utils import get_class

    try:
        launcher_class: Any = get_class(target)
    except Exception:
        return
    launch = getattr(launcher_class, "launch", None)
    if launch is None or getattr(launch, "_ami_stops_between_batches", False):
        return

    def launch_unless_stopped(self: Any, job_overrides: Any, initial_job_idx: int) -> Any:
        _end_if_stopped(self.config)
        returns = launch(self, job_overrides, initial_job_idx)
        _end_if_stopped(self.config)
        return returns

    launch_unless_stopped._ami_stops_between_batches = True  # type: ignore[attr-defined]
    launcher_class.launch = launch_unless_stopped


def _end_if_stopped(config: Any) -> None:
    from ami.sweeps.job import SweepInterrupted

    sweep_dir = Path(os.path.abspath(str(config.hydra.sweep.dir)))
    reason = stop_reason(sweep_dir)
    if reason is not None:
        raise SweepInterrupted(f"the sweep was stopped ({reason})")


def take_signals(sweep: Sweep) -> None:
    """Install the sweep process's signal handling for its launcher (see the module)."""
    if sweep.launcher == "local_processes":
        previous = signal.getsignal(signal.SIGINT)
        if previous != signal.SIG_IGN:  # ignored already (a background job): stays so
            sweep.previous_handlers[signal.SIGINT] = previous
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            os.environ[JOBS_TAKE_SIGINT_ENV] = "1"
        sweep.previous_handlers[signal.SIGTERM] = signal.signal(
            signal.SIGTERM, _stop_handler(sweep)
        )
    elif sweep.launcher == "slurm":
        handler = _stop_handler(sweep)
        for sig in (signal.SIGINT, signal.SIGTERM):
            sweep.previous_handlers[sig] = signal.signal(sig, handler)


def restore_signals(sweep: Sweep) -> None:
    """Put back the handlers :func:`take_signals` replaced (idempotent)."""
    for sig, handler in sweep.previous_handlers.items():
        signal.signal(sig, handler)
    sweep.previous_handlers.clear()
    os.environ.pop(JOBS_TAKE_SIGINT_ENV, None)


def _stop_handler(sweep: Sweep) -> Any:
    def stop(signum: int, frame: types.FrameType | None) -> None:
        sweep.signals_seen += 1
        name = signal.Signals(signum).name
        if sweep.signals_seen == 1:
            request_stop(sweep.sweep_dir, f"{name} to the sweep's process")
            logger.warning(
                "stopping the sweep: running jobs stop cleanly, no new job starts (%s)%s",
                stop_path(sweep.sweep_dir),
                "; Ctrl+C again to stop waiting for them" if sweep.launcher == "slurm" else "",
            )
        elif sweep.launcher == "slurm" and signum == signal.SIGINT:
            raise KeyboardInterrupt
        else:
            logger.warning("already stopping; waiting for the jobs to finish")

    return stop


def expected_jobs(config: DictConfig) -> int | None:
    """How many jobs the sweep will launch: the basic sweeper's grid, Optuna's trials."""
    sweeper = config.hydra.sweeper
    target = str(sweeper.get("_target_", ""))
    try:
        if target.endswith("BasicSweeper"):
            from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
            from hydra.core.override_parser.overrides_parser import OverridesParser

            params = sweeper.get("params") or {}
            arguments = [f"{key}={value}" for key, value in params.items()]
            arguments += [str(item) for item in config.hydra.overrides.task]
            overrides = OverridesParser.create().parse_overrides(arguments)
            batches = BasicSweeper.split_arguments(overrides, None)
            return sum(len(batch) for batch in batches)
        if "optuna" in target:
            return int(sweeper.n_trials)
    except Exception as error:  # only the summary's "not started" count needs it
        logger.debug("could not count the sweep's jobs: %s", error)
    return None


def check_objective_name(name: str) -> None:
    """Refuse an ``optimized_metric`` no run writes, before any job starts."""
    from ami.threads.run_report import FINAL_METRICS

    for pattern in FINAL_METRICS:
        regex = (
            re.escape(pattern)
            .replace(re.escape("<trainer>"), "[^/]+")
            .replace(re.escape("<name>"), ".+")  # eval/probe_r2/position_final
        )
        if re.fullmatch(regex, name):
            return
    raise SystemExit(
        f"optimized_metric={name!r}: expected one of the end-of-run metrics "
        f"{', '.join(FINAL_METRICS)} (<trainer> is a trainer's name, e.g. "
        "training/dynamics/loss_final; <name> an evaluation's, e.g. "
        "eval/prediction_vs_copy_final)"
    )
