"""The simulated world as the agent's environment: actions step it, observations render it."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import Any

import torch
from typing_extensions import override

from ami.interaction.environment import Environment
from ami.interaction.io.actions import ACTION_CHOICES, inputs_from_action
from ami.interaction.io.frames import rgb_to_observation
from ami.interaction.io.spectrogram import AUDIO
from ami.interaction.spaces import IMAGE, Box, Observation, image_space
from ami.interaction.worlds.sim.coverage import coverage_map
from ami.interaction.worlds.sim.sound import SimSound
from ami.interaction.worlds.sim.world import Pose, SimWorld

logger = logging.getLogger(__name__)


class SimEnvironment(Environment):
    """A :class:`SimWorld` driven directly: each action is one world step.

    The true pose goes to :meth:`metrics` (TensorBoard), :meth:`truth` (probes) and
    :attr:`pose` (tests, benchmarks), never into observations; :meth:`images` draws the
    map of where the agent has been.

    Args:
        world: The world to drive.
        audio: The world's sound (``interaction.audio.enabled``): observations then hold
            ``audio`` beside ``image`` and the state holds ``sound``. None (the default)
            is exactly the world without it: the same frames, the same state.
    """

    action_choices = ACTION_CHOICES
    time_scalable = True

    def __init__(self, world: SimWorld, audio: SimSound | None = None) -> None:
        self.world = world
        self.audio = audio
        if audio is not None:
            audio.bind(world)

    @property
    def pose(self) -> Pose:
        """The agent's true pose (read-only)."""
        return self.world.pose

    @property
    def cells_visited(self) -> int:
        """Distinct map cells entered so far."""
        return self.world.cells_visited

    @override
    def observation_space(self) -> dict[str, Box]:
        space = image_space(self.world.renderer.height, self.world.renderer.width)
        if self.audio is not None:
            space[AUDIO] = self.audio.space()
        return space

    @override
    def observe(self) -> Observation:
        if self.audio is None:
            return {IMAGE: rgb_to_observation(self.world.render())}
        return {IMAGE: rgb_to_observation(self.world.render()), AUDIO: self.audio.observe()}

    @override
    def state_dict(self) -> dict[str, Any]:
        state = self.world.state_dict()
        if self.audio is not None:
            state["sound"] = self.audio.state_dict()
        return state

    @override
    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.world.load_state_dict(state)
        if self.audio is None:
            return
        if "sound" in state:
            self.audio.load_state_dict(state["sound"])
        else:
            logger.warning(
                "the saved world had no sound (interaction.audio.enabled was false): the "
                "sound starts afresh where the agent now stands"
            )
            self.audio.bind(self.world)

    @override
    def broke_continuity(self) -> bool:
        return self.world.take_jump()

    @override
    def affect(self, action: torch.Tensor) -> None:
        self.world.step(inputs_from_action(action))
        if self.audio is not None:
            self.audio.step(self.world)

    @override
    def metrics(self) -> Mapping[str, float]:
        return self.world.metrics()

    @override
    def truth(self) -> dict[str, torch.Tensor]:
        """``pose``: ``[x / map width, y / map height, cos heading, sin heading]``, float32.

        Fractions of the map's size, so that a probe's R^2 compares across layouts, and
        the heading as a point on the circle, so that 359 and 1 degrees are neighbours.
        """
        x, y, heading = self.world.pose
        radians = math.radians(heading)
        grid = self.world.grid
        values = [x / grid.width, y / grid.height, math.cos(radians), math.sin(radians)]
        return {"pose": torch.tensor(values, dtype=torch.float32)}

    @override
    def images(self) -> dict[str, torch.Tensor]:
        """``coverage``: the top-down map of :func:`~.coverage.coverage_map`."""
        return {"coverage": rgb_to_observation(coverage_map(self.world))}
