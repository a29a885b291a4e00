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
    resume_from: str | None = None
    paths: Any = None
    threads: Any = None
    fabric: Any = None
    web_api: Any = None
    checkpoint: Any = None
    interaction: Any = None
    model: Any = None
    buffer: Any = None
    agent: Any = None


def register() -> None:
    """Register ``${ami.pid:}`` and the ``launch_schema`` config (idempotent).

    The run directory ends with the process id: with the microsecond time stamp this
    keeps two launches in the same second (even the same microsecond) apart.
    """
    if not OmegaConf.has_resolver("ami.pid"):
        OmegaConf.register_new_resolver("ami.pid", os.getpid, use_cache=True)
    ConfigStore.instance().store(name="launch_schema", node=LaunchConfig)


register()
