"""OmegaConf resolvers the configs use; registered on import, before Hydra composes."""

from __future__ import annotations

import os

from omegaconf import OmegaConf


def register_resolvers() -> None:
    """Register ``${ami.pid:}`` (idempotent).

    The run directory ends with the process id: with the microsecond time stamp this
    keeps two launches in the same second (even the same microsecond) apart.
    """
    if not OmegaConf.has_resolver("ami.pid"):
        OmegaConf.register_new_resolver("ami.pid", os.getpid, use_cache=True)


register_resolvers()
