"""The action space, in one place: discrete choices -> VRChat-style inputs -> OSC messages.

The agent emits one choice index per category (:data:`ACTION_CHOICES`). Every world
turns that into the same :class:`Inputs` (axes in ``[-1, 1]``, buttons pressed or not),
the way VRChat's OSC input API sees a controller, so the simulated world, the OSC
actuator and the sim's OSC server cannot disagree about what an action means.

Example:
    >>> inputs = inputs_from_action(torch.tensor([1, 0, 2, 0, 1]))
    >>> inputs.vertical, inputs.look_horizontal, inputs.run
    (1.0, -1.0, True)
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Final

import torch

ACTION_CHOICES: Final = (3, 3, 3, 2, 2)
"""Number of choices per action category; the agent's output layout."""

ACTION_NAMES: Final = ("move_vertical", "move_horizontal", "look_horizontal", "jump", "run")
"""Category names, in the order of :data:`ACTION_CHOICES` (e.g. recording CSV columns)."""

_MEANINGS: Final = (
    "0 stop, 1 forward, 2 backward",
    "0 stop, 1 right, 2 left",
    "0 stop, 1 turn right, 2 turn left",
    "0 release, 1 press",
    "0 release, 1 press",
)
_AXIS_SIGN: Final = (0.0, 1.0, -1.0)
"""Axis choice -> direction: 0 stop, 1 positive (forward/right), 2 negative."""

VERTICAL: Final = "/input/Vertical"
HORIZONTAL: Final = "/input/Horizontal"
LOOK_HORIZONTAL: Final = "/input/LookHorizontal"
JUMP: Final = "/input/Jump"
RUN: Final = "/input/Run"
OSC_ADDRESSES: Final = (VERTICAL, HORIZONTAL, LOOK_HORIZONTAL, JUMP, RUN)
"""VRChat's OSC input addresses, one per action category (axes take floats, buttons ints)."""


@dataclass(frozen=True)
class Inputs:
    """What a controller holds at one moment, as VRChat's OSC input API models it.

    Axes are floats in ``[-1, 1]`` (positive: forward, right, turn right); buttons are
    held until released. The default value is "nothing held", the neutral state a world
    is left in on pause and teardown.
    """

    vertical: float = 0.0
    horizontal: float = 0.0
    look_horizontal: float = 0.0
    jump: bool = False
    run: bool = False

    def to_osc(self) -> list[tuple[str, float | int]]:
        """One ``(address, value)`` per input: floats for axes, ``1``/``0`` for buttons."""
        return [
            (VERTICAL, float(self.vertical)),
            (HORIZONTAL, float(self.horizontal)),
            (LOOK_HORIZONTAL, float(self.look_horizontal)),
            (JUMP, int(self.jump)),
            (RUN, int(self.run)),
        ]

    def with_osc(self, address: str, value: float) -> Inputs:
        """These inputs with one OSC message applied; axes are clipped to ``[-1, 1]``.

        Raises:
            KeyError: ``address`` is not one of :data:`OSC_ADDRESSES`.
        """
        axis = min(1.0, max(-1.0, float(value)))
        if address == VERTICAL:
            return replace(self, vertical=axis)
        if address == HORIZONTAL:
            return replace(self, horizontal=axis)
        if address == LOOK_HORIZONTAL:
            return replace(self, look_horizontal=axis)
        if address == JUMP:
            return replace(self, jump=bool(value))
        if address == RUN:
            return replace(self, run=bool(value))
        raise KeyError(f"{address!r} is not a VRChat input address; accepted: {OSC_ADDRESSES}")


def validate_action(action: torch.Tensor) -> list[int]:
    """Check an action against :data:`ACTION_CHOICES` and return its choices as ints.

    Raises:
        TypeError: ``action`` is not an integer tensor.
        ValueError: Wrong shape, or a choice out of its category's range; the message
            names the category and the accepted values.
    """
    if not isinstance(action, torch.Tensor):
        raise TypeError(f"action must be an int64 torch.Tensor, got {type(action).__name__}")
    if action.dtype.is_floating_point or action.dtype.is_complex or action.dtype == torch.bool:
        raise TypeError(f"action must be an integer tensor (int64), got dtype {action.dtype}")
    if tuple(action.shape) != (len(ACTION_CHOICES),):
        raise ValueError(
            f"action must have shape ({len(ACTION_CHOICES)},), one choice per category "
            f"{ACTION_NAMES}, got shape {tuple(action.shape)}"
        )
    choices = [int(value) for value in action.tolist()]
    for index, (choice, size) in enumerate(zip(choices, ACTION_CHOICES, strict=True)):
        if not 0 <= choice < size:
            raise ValueError(
                f"action[{index}] ({ACTION_NAMES[index]}) = {choice} is out of range: "
                f"accepted 0..{size - 1} ({_MEANINGS[index]})"
            )
    return choices


def check_speed(name: str, value: float) -> float:
    """Validate an axis speed (the axis value sent for a full choice): ``0 < value <= 1``."""
    if not 0.0 < value <= 1.0:
        raise ValueError(f"{name} must be in (0, 1] (an OSC axis value), got {value}")
    return float(value)


def inputs_from_action(
    action: torch.Tensor,
    vertical_speed: float = 1.0,
    horizontal_speed: float = 1.0,
    look_speed: float = 1.0,
) -> Inputs:
    """The inputs that one discrete action holds.

    Args:
        action: int64 ``(5,)``, one choice per category (see :data:`ACTION_CHOICES`).
        vertical_speed: Axis value of "forward" (negated for "backward").
        horizontal_speed: Axis value of "right" (negated for "left").
        look_speed: Axis value of "turn right" (negated for "turn left").
    """
    vertical, horizontal, look, jump, run = validate_action(action)
    return Inputs(
        vertical=_AXIS_SIGN[vertical] * vertical_speed,
        horizontal=_AXIS_SIGN[horizontal] * horizontal_speed,
        look_horizontal=_AXIS_SIGN[look] * look_speed,
        jump=jump == 1,
        run=run == 1,
    )
