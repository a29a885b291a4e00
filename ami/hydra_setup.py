"""What Hydra must know before it composes a config: resolvers and the typed schema.

Imported by :mod:`ami.experiment` (and so by ``scripts/launch.py``) before composition.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf


@dataclass
class LaunchConfig:
    """Types of the primary config's own keys, so ``seed=abc`` fails with the key named.

    Group nodes stay ``Any``: each option is checked when its ``_target_`` is built.
    """

    task_name: str = "default"
    seed: int = 0
    max_uptime: float | None = None
    time_scale: float = 1.0
    resume_from: str | None = None
    optimized_metric: str | None = None
    paths: Any = None
    threads: Any = None
    fabric: Any = None
    web_api: Any = None
    checkpoint: Any = None
    interaction: Any = None
    model: Any = None
    buffer: Any = None
    agent: Any = None


def available_cores() -> int:
    """Cores this process may run on (its affinity mask: taskset, cgroups, SLURM)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def cores_per_job() -> int | None:
    """``${ami.cores_per_job:}``: this job's share of the cores, None outside a sweep.

    Parallel jobs that each let torch take every core slow each other down (each
    operation waits for its slowest piece), so a joblib job gets ``cores // n_jobs``
    (joblib's negative ``n_jobs``: ``-1`` every core, ``-2`` all but one); a submitit
    job gets its ``cpus_per_task`` where set. Single runs, the basic launcher (one job
    at a time) and unknown launchers get None: torch's default.
    """
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    try:
        hydra_cfg = HydraConfig.get()
    except ValueError:  # composed outside a Hydra run (tests, notebooks)
        return None
    if hydra_cfg.mode != RunMode.MULTIRUN:
        return None
    launcher = hydra_cfg.launcher
    target = str(launcher.get("_target_", "")).lower()
    if "joblib" in target:
        n_jobs = launcher.get("n_jobs")
        if not isinstance(n_jobs, int) or n_jobs == 0:
            return None  # joblib refuses it itself, naming n_jobs
        cores = available_cores()
        parallel = n_jobs if n_jobs > 0 else max(1, cores + 1 + n_jobs)
        return max(1, cores // parallel)
    if "submitit" in target:
        cpus = launcher.get("cpus_per_task")
        return cpus if isinstance(cpus, int) and cpus > 0 else None
    return None


def gym_config_value(field: str, environment: Any, modality: str | None = None) -> Any:
    """``${ami.gym:...}``: see :func:`ami.interaction.worlds.gym.config_value` (imported on use)."""
    from ami.interaction.worlds.gym import config_value

    return config_value(field, environment, modality)


def register() -> None:
    """Register ``${ami.pid:}``, ``${ami.cores_per_job:}``, ``${ami.gym:}`` and ``launch_schema``.

    Idempotent.

    The run directory ends with the process id: with the microsecond time stamp this
    keeps two launches in the same second (even the same microsecond) apart.
    """
    if not OmegaConf.has_resolver("ami.pid"):
        OmegaConf.register_new_resolver("ami.pid", os.getpid, use_cache=True)
    if not OmegaConf.has_resolver("ami.cores_per_job"):
        OmegaConf.register_new_resolver("ami.cores_per_job", cores_per_job)
    if not OmegaConf.has_resolver("ami.gym"):
        OmegaConf.register_new_resolver("ami.gym", gym_config_value)
    ConfigStore.instance().store(name="launch_schema", node=LaunchConfig)


register()
