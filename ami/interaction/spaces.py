"""What a world shows and what it accepts, declared once and checked before anything runs.

An observation is a mapping of modality name to tensor (``{"image": (3, H, W)}``, plus
``"audio"``, ``"vector"`` or whatever a world has). Each world declares a :class:`Box`
per modality (:meth:`Environment.observation_space`) and one action space
(:meth:`Environment.action_space`): a :class:`MultiDiscrete` (one choice per category,
as VRChat's inputs) or a :class:`Box` (continuous values). The runtime checks the first
observation against the declaration, and the agent's action space and every trainer's
modality against the world's before the run starts, so that a mismatch is an error
naming both sides, never a model quietly learning from the wrong thing.

Modality names are also the record keys of the steps (``buffer.keys: [image, action]``),
so they must not collide with the keys agents record besides them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final, TypeAlias

import torch
from typing_extensions import override

IMAGE: Final = "image"
"""The camera's modality: float ``(C, H, W)`` in ``[0, 1]``."""

RESERVED_KEYS: Final = frozenset(
    {
        "action",
        "reward",
        "terminated",
        "truncated",
        "latent",
        "hidden",
        "action_log_prob",
        "value",
        "decision",
        "segment",
    }
)
"""Record keys the runtime and its agents use besides the modalities."""

Observation: TypeAlias = Mapping[str, torch.Tensor]
"""One observation: modality name -> tensor."""

TRUTH_PREFIX: Final = "truth/"
"""Observation (and record) keys of the world's own state (``Environment.truth``, e.g.
``truth/pose``), added only while an evaluation asks for them. An agent must never
decide on them; it passes them into its records (:func:`truth_entries`) so that the
evaluation can pair each frame with what was true when it was seen."""


def truth_entries(observation: Observation) -> dict[str, torch.Tensor]:
    """The ``truth/*`` entries of ``observation``, for an agent's record of it."""
    return {key: value for key, value in observation.items() if key.startswith(TRUTH_PREFIX)}


@dataclass(frozen=True)
class Box:
    """Tensors of one shape and dtype, each value within ``[low, high]``.

    Args:
        shape: The tensor's shape.
        low: Least value (``-inf`` for none).
        high: Greatest value (``inf`` for none).
        dtype: The tensor's dtype.
    """

    shape: tuple[int, ...]
    low: float = -math.inf
    high: float = math.inf
    dtype: torch.dtype = torch.float32

    def __post_init__(self) -> None:
        if any(not isinstance(size, int) or size < 1 for size in self.shape):
            raise ValueError(f"a box's shape needs positive sizes, got {self.shape}")
        if not self.low <= self.high:
            raise ValueError(f"a box needs low <= high, got [{self.low}, {self.high}]")

    def check(self, key: str, value: torch.Tensor) -> None:
        """Raise a ValueError naming ``key`` unless ``value`` belongs to this box."""
        if not isinstance(value, torch.Tensor):
            raise ValueError(f"{key}: expected a tensor ({self}), got {type(value).__name__}")
        if tuple(value.shape) != self.shape or value.dtype != self.dtype:
            raise ValueError(
                f"{key}: expected {self}, got shape {tuple(value.shape)} {_dtype(value.dtype)}"
            )
        if value.numel() and (value.min() < self.low or value.max() > self.high):
            raise ValueError(
                f"{key}: expected values in [{self.low}, {self.high}], got "
                f"[{float(value.min())}, {float(value.max())}]"
            )

    @override
    def __str__(self) -> str:
        return f"Box(shape={self.shape}, {_dtype(self.dtype)}, [{self.low}, {self.high}])"


@dataclass(frozen=True)
class MultiDiscrete:
    """One choice per category: int64 ``(len(choices),)``, entry ``i`` in ``[0, choices[i])``."""

    choices: tuple[int, ...]

    def __post_init__(self) -> None:
        if not self.choices or any(not isinstance(c, int) or c < 1 for c in self.choices):
            raise ValueError(f"choices must be positive counts, got {list(self.choices)}")

    def check(self, key: str, value: torch.Tensor) -> None:
        """Raise a ValueError naming ``key`` unless ``value`` is one valid choice per category."""
        if (
            not isinstance(value, torch.Tensor)
            or tuple(value.shape) != (len(self.choices),)
            or value.dtype != torch.int64
        ):
            got = (
                f"shape {tuple(value.shape)} {_dtype(value.dtype)}"
                if isinstance(value, torch.Tensor)
                else type(value).__name__
            )
            raise ValueError(f"{key}: expected {self}, got {got}")
        for index, (choice, size) in enumerate(zip(value.tolist(), self.choices, strict=True)):
            if not 0 <= choice < size:
                raise ValueError(f"{key}: category {index} must be in [0, {size}), got {choice}")

    @override
    def __str__(self) -> str:
        return f"MultiDiscrete({list(self.choices)})"


ActionSpace: TypeAlias = MultiDiscrete | Box
"""What a world accepts and an agent drives."""


def image_space(height: int, width: int, channels: int = 3) -> dict[str, Box]:
    """The observation space of a camera-only world."""
    return {IMAGE: Box((channels, height, width), 0.0, 1.0)}


def check_modality_names(names: Sequence[str], where: str) -> None:
    """Raise unless every modality name is usable as a record key."""
    clashes = sorted(set(names) & RESERVED_KEYS)
    if clashes:
        raise ValueError(
            f"{where}: modality name(s) {clashes} are record keys of their own; "
            f"pick others (reserved: {sorted(RESERVED_KEYS)})"
        )


def check_observation(observation: Observation, space: Mapping[str, Box], world: str) -> None:
    """Raise a ValueError unless ``observation`` has exactly the declared modalities, each fitting.

    Args:
        observation: What the world returned.
        space: What it declared.
        world: The world's name, for the message.
    """
    if not isinstance(observation, Mapping):
        raise ValueError(
            f"{world}.observe() returned a {type(observation).__name__}; an observation is a "
            f"mapping of modality name -> tensor (declared: {describe(space)})"
        )
    if set(observation) != set(space):
        raise ValueError(
            f"{world}.observe() returned modalities {sorted(observation)}, but the world "
            f"declared {sorted(space)}"
        )
    for name, box in space.items():
        box.check(f"{world} observation {name!r}", observation[name])


def describe(space: Mapping[str, Box]) -> str:
    """A space in one line, for messages and logs."""
    return ", ".join(f"{name}: {box}" for name, box in space.items()) or "(nothing)"


def _dtype(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")
