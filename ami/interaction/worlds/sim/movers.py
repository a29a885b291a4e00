"""Things that move on their own: balls bouncing and boxes sliding through the rooms.

They give a world model something to predict that the agent does not cause: each mover
glides in a straight line, bounces off walls and now and then turns at random (drawn
from the world's seeded generator, so a seed still fixes everything).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Final

import numpy as np
import torch

from ami.interaction.worlds.sim.grid_map import GridMap
from ami.interaction.worlds.sim.raycaster import Array, Sprites
from ami.interaction.worlds.sim.textures import Floats
from ami.state import generator_state, load_generator_state

_COLOURS: Final[Floats] = np.array(
    [
        [1.00, 0.12, 0.12],
        [1.00, 0.92, 0.10],
        [0.96, 0.96, 0.96],
        [1.00, 0.20, 0.85],
        [0.10, 0.95, 0.95],
        [0.55, 1.00, 0.10],
        [1.00, 0.55, 0.00],
        [0.08, 0.08, 0.08],
    ],
    dtype=np.float32,
)
_TURN_PROBABILITY: Final = 0.02
_SPEED_RANGE: Final = (0.03, 0.07)
"""Cells per step; slower than the agent walks, so it can follow one."""
_BOUNCE_HEIGHT: Final = 0.25
_BOUNCE_RATE: Final = 0.25
"""Radians of the bounce cycle per step (a ball lands about every 12 steps)."""


class Movers:
    """A fixed number of sprites with positions and velocities; balls also bounce.

    Args:
        grid: The floor plan they move in.
        count: How many (0 for a static world).
        rng: The world's generator; start cells, speeds and turns are drawn from it.
        avoid: A cell ``(x, y)`` none of them starts in (the agent's).
    """

    def __init__(
        self, grid: GridMap, count: int, rng: np.random.Generator, avoid: tuple[int, int]
    ) -> None:
        cells = [cell for cell in grid.free_cells if (int(cell[0]), int(cell[1])) != avoid]
        if not 0 <= count <= len(cells):
            raise ValueError(f"movers must be in 0..{len(cells)} for this layout, got {count}")
        self.grid = grid
        self._rng = rng
        chosen = rng.choice(len(cells), size=count, replace=False)
        self.positions: Array = np.array([cells[i] for i in chosen], dtype=np.float64) + 0.5
        self.positions = self.positions.reshape(count, 2)
        self.velocities = self._random_velocities(count)
        self.round = np.arange(count) % 2 == 0
        self.radius: Array = np.where(self.round, 0.22, 0.18)
        self._colours = _COLOURS[np.arange(count) % len(_COLOURS)]
        self._phase = rng.uniform(0.0, 2.0 * math.pi, count)
        self._time = 0

    def _random_velocities(self, count: int) -> Array:
        angle = self._rng.uniform(0.0, 2.0 * math.pi, count)
        speed = self._rng.uniform(*_SPEED_RANGE, count)
        return np.stack([np.cos(angle), np.sin(angle)], axis=-1) * speed[:, None]

    def step(self) -> None:
        """Advance one step: maybe turn, then move each axis, bouncing off walls."""
        count = len(self.positions)
        turning = self._rng.random(count) < _TURN_PROBABILITY
        new = self._random_velocities(count)
        self.velocities[turning] = new[turning]
        for axis in (0, 1):
            moved = self.positions.copy()
            moved[:, axis] += self.velocities[:, axis]
            blocked = self.grid.blocked(moved[:, 0], moved[:, 1], self.radius)
            self.velocities[blocked, axis] *= -1.0
            self.positions[~blocked] = moved[~blocked]
        self._time += 1

    def state_dict(self) -> dict[str, Any]:
        """Positions, velocities, the bounce clock and the generator (shared with the world)."""
        return {
            "positions": torch.from_numpy(self.positions.copy()),
            "velocities": torch.from_numpy(self.velocities.copy()),
            "phase": torch.from_numpy(np.asarray(self._phase).copy()),
            "time": self._time,
            "rng": generator_state(self._rng),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict` (same number of movers)."""
        positions = state["positions"].numpy()
        if positions.shape != self.positions.shape:
            raise ValueError(
                f"the saved world has {len(positions)} movers, this one {len(self.positions)} "
                "(interaction.environment.world.movers changed)"
            )
        self.positions = positions.copy()
        self.velocities = state["velocities"].numpy().copy()
        self._phase = state["phase"].numpy().copy()
        self._time = int(state["time"])
        load_generator_state(self._rng, state["rng"])

    def sprites(self) -> Sprites:
        """Their current look, for the renderer."""
        bounce = _BOUNCE_HEIGHT * np.abs(np.sin(_BOUNCE_RATE * self._time + self._phase))
        return Sprites(
            positions=self.positions,
            radius=self.radius,
            lift=self.radius + np.where(self.round, bounce, 0.0),
            colours=self._colours,
            round=self.round,
        )
