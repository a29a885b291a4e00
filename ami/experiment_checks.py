"""Checks that need several parts of a config at once, run before anything starts.

Each part checks its own arguments when it is built; what only the whole experiment can
tell (does a trainer's model exist, can a buffer store what the world observes, is
there a checkpoint to resume from) is checked here, with the config key named, so a
mistake costs seconds at launch, not a run that dies or learns garbage later.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from omegaconf import DictConfig

from ami.checkpoints.store import validate_keep_last
from ami.config_checks import positive_number
from ami.data.buffer import DataBuffer
from ami.data.dtypes import check_storable, storage_dtype
from ami.trainers.trainer import Trainer


class ConfigError(ValueError):
    """A config that composes but cannot make a working system."""


OBSERVATION_DTYPE = torch.float32
"""What every world observes (see :class:`~ami.interaction.Environment`)."""


def check_buffer_dtypes(path: str, node: DictConfig) -> None:
    """Raise unless each ``<path>.dtypes.<key>`` names a storage dtype that fits the key.

    Only the observations' dtype is known before the first step; it is checked here so
    that ``buffer.dtypes.observation=int16`` fails at launch, not after start.
    """
    dtypes: Any = node.get("dtypes")
    if not dtypes:
        return
    for key, name in dtypes.items():
        full_key = f"{path}.dtypes.{key}"
        try:
            dtype = storage_dtype(full_key, name)
            if key == "observation":
                check_storable(full_key, dtype, OBSERVATION_DTYPE)
        except ValueError as error:
            raise ConfigError(str(error)) from None


def check_trainers(
    trainers: Mapping[str, tuple[str, Trainer]],
    models: Sequence[str],
    buffers: Mapping[str, DataBuffer],
) -> None:
    """Raise unless every trainer's models and buffer exist and fit it.

    Args:
        trainers: Trainer name -> (its config key, the trainer).
        models: The experiment's model names.
        buffers: The experiment's buffers by name.
    """
    for name, (key, trainer) in trainers.items():
        try:
            trainer.check_wiring(name, models, buffers)
        except (KeyError, TypeError, ValueError) as error:
            message = error.args[0] if isinstance(error, KeyError) else str(error)
            raise ConfigError(f"{key}: {message}") from None


@dataclass(frozen=True)
class CheckpointSettings:
    """The ``checkpoint`` group, checked."""

    every: float | None
    keep_last: int | None
    buffers: bool


def check_checkpoint_settings(cfg: DictConfig) -> CheckpointSettings:
    """``checkpoint.*`` as typed values, or a ConfigError naming the key."""
    node: Any = cfg.get("checkpoint") or {}
    every = node.get("every")
    if every is not None:
        try:
            positive_number("checkpoint.every", every)
        except ValueError as error:
            raise ConfigError(f"{error} (seconds between saves, or null)") from None
    try:
        keep_last = validate_keep_last(node.get("keep_last", 3))
    except ValueError as error:
        raise ConfigError(str(error)) from None
    buffers = node.get("buffers", False)
    if not isinstance(buffers, bool):
        raise ConfigError(f"checkpoint.buffers={buffers!r}: expected true or false")
    return CheckpointSettings(None if every is None else float(every), keep_last, buffers)
