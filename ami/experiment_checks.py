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
from ami.evaluation import Evaluation
from ami.interaction.agent import Agent
from ami.interaction.environment import Environment
from ami.interaction.spaces import IMAGE, check_modality_names, describe
from ami.trainers.trainer import Trainer


class ConfigError(ValueError):
    """A config that composes but cannot make a working system."""


OBSERVATION_DTYPE = torch.float32
"""What a camera observes (see :class:`~ami.interaction.Environment`)."""


def check_buffer_dtypes(path: str, node: DictConfig) -> None:
    """Raise unless each ``<path>.dtypes.<key>`` names a storage dtype that fits the key.

    The camera's dtype is known before anything is built; it is checked here so that
    ``buffer.dtypes.image=int16`` fails at once (:func:`check_world` checks every
    modality the world declares, once the world exists).
    """
    dtypes: Any = node.get("dtypes")
    if not dtypes:
        return
    for key, name in dtypes.items():
        if name is None:  # null: the key's own dtype
            continue
        full_key = f"{path}.dtypes.{key}"
        try:
            dtype = storage_dtype(full_key, name)
            if key == IMAGE:
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


def check_evaluation(
    evaluation: Evaluation,
    models: Sequence[str],
    buffers: Mapping[str, DataBuffer],
    environment: Environment,
) -> None:
    """Raise unless the evaluation's models, buffers and modality exist.

    A buffer it cannot withhold from would let the models train on the frames they are
    scored on: the numbers would look better than they are.
    """
    missing = [name for name in evaluation.reads if name not in models]
    if missing:
        raise ConfigError(
            f"model.evaluation reads model(s) {missing}, but the models are {list(models)}"
        )
    unknown = [name for name in evaluation.withhold_from if name not in buffers]
    if unknown:
        raise ConfigError(
            f"model.evaluation.withhold_from names buffer(s) {unknown}, but the buffers are "
            f"{sorted(buffers)}"
        )
    space = environment.observation_space()
    absent = [name for name in evaluation.modalities if name not in space]
    if absent:
        raise ConfigError(
            f"model.evaluation reads modality {absent}, but {type(environment).__name__} "
            f"observes {describe(space)}"
        )


def check_world(
    environment: Environment,
    agent: Agent,
    trainers: Mapping[str, tuple[str, Trainer]],
    buffers: Mapping[str, tuple[str, DataBuffer]],
    time_scale: float = 1.0,
) -> None:
    """Raise unless the agent, the trainers, the buffers and ``time_scale`` fit the world.

    Args:
        environment: The world, wrappers included.
        agent: The agent; it takes the world's action space here, or refuses it.
        trainers: Trainer name -> (its config key, the trainer).
        buffers: Buffer name -> (its config key, the buffer).
        time_scale: The run's ``time_scale``.
    """
    world = type(environment).__name__
    space = environment.observation_space()
    if time_scale != 1 and not environment.time_scalable:
        raise ConfigError(
            f"time_scale={time_scale:g}: {world} runs on real time and cannot be sped up or "
            "slowed down; use time_scale=1 (worlds that follow their steps, such as "
            "interaction=sim, interaction=video or interaction=gym, can)"
        )
    try:
        check_modality_names(list(space), world)
        agent.fit_action_space(environment.action_space())
    except ValueError as error:
        raise ConfigError(f"agent.agent: {error}") from None
    observed = f"{world} observes {describe(space)}"
    for modality in agent.modalities:
        if modality not in space:
            raise ConfigError(f"agent.agent.modality={modality!r}, but {observed}")
    for key, buffer in buffers.values():
        keys = buffer.configured_keys or []
        if "observation" in keys and "observation" not in space:
            raise ConfigError(
                f"{key}.keys names 'observation': observations are stored per modality "
                f"now, under the modality's name ({sorted(space)}), e.g. keys: [image, action]"
            )
        for name, dtype in buffer.configured_dtypes.items():
            if name in space:
                try:
                    check_storable(f"{key}.dtypes.{name}", dtype, space[name].dtype)
                except ValueError as error:
                    raise ConfigError(str(error)) from None
    stored = {buffer.shared_name: buffer.configured_keys for _, buffer in buffers.values()}
    for key, trainer in trainers.values():
        for modality in trainer.modalities:
            if modality not in space:
                raise ConfigError(f"{key} reads modality {modality!r}, but {observed}")
            kept = stored.get(trainer.buffer_name)
            if kept is not None and modality not in kept:
                raise ConfigError(
                    f"{key} reads modality {modality!r}, but its buffer "
                    f"{trainer.buffer_name!r} stores only {kept}: add it to that buffer's keys"
                )


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
