"""The simulated world as the agent's environment: actions step it, observations render it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from typing_extensions import override

from ami.interaction.environment import Environment
from ami.interaction.io.actions import ACTION_CHOICES, inputs_from_action
from ami.interaction.io.frames import rgb_to_observation
from ami.interaction.worlds.sim.world import Pose, SimWorld


class SimEnvironment(Environment):
    """A :class:`SimWorld` driven directly: each action is one world step.

    The true pose goes to :meth:`metrics` (TensorBoard) and to :attr:`pose` (tests,
    benchmarks), never into observations.

    Args:
        world: The world to drive.
    """

    action_choices = ACTION_CHOICES

    def __init__(self, world: SimWorld) -> None:
        self.world = world

    @property
    def pose(self) -> Pose:
        """The agent's true pose (read-only)."""
        return self.world.pose

    @property
    def cells_visited(self) -> int:
        """Distinct map cells entered so far."""
        return self.world.cells_visited

    @override
    def observe(self) -> torch.Tensor:
        return rgb_to_observation(self.world.render())

    @override
    def state_dict(self) -> dict[str, Any]:
        return self.world.state_dict()

    @override
    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.world.load_state_dict(state)

    @override
    def broke_continuity(self) -> bool:
        return self.world.take_jump()

    @override
    def affect(self, action: torch.Tensor) -> None:
        self.world.step(inputs_from_action(action))

    @override
    def metrics(self) -> Mapping[str, float]:
        return self.world.metrics()
