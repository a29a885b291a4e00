"""The simulated world's state and physics: a body that walks, turns and hops among movers.

It takes the same :class:`~ami.interaction.io.actions.Inputs` as VRChat (axes in
``[-1, 1]``, buttons held), so the direct sim and the sim behind OSC run one physics.
One :meth:`SimWorld.step` is one inference step; speeds are per step.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Final, NamedTuple

import numpy as np

from ami.interaction.io.actions import Inputs
from ami.interaction.io.frames import Image, check_size
from ami.interaction.worlds.sim.grid_map import DEFAULT_LAYOUT, GridMap
from ami.interaction.worlds.sim.movers import Movers
from ami.interaction.worlds.sim.raycaster import Raycaster

BODY_RADIUS: Final = 0.2
"""Half-size of the agent's square body, in cells: it stops this far from walls."""
EYE_HEIGHT: Final = 0.5
"""Eye height standing, in cells (the ceiling is at 1)."""
_JUMP_VELOCITY: Final = 0.1
_GRAVITY: Final = 0.04
"""A hop lasts 6 steps and lifts the eyes by 0.18 cells."""


class Pose(NamedTuple):
    """Where the agent truly is: for metrics and tests, never for the agent."""

    x: float
    """Cells from the map's west edge."""
    y: float
    """Cells from the map's north edge (rows grow southwards)."""
    heading: float
    """Degrees in ``[0, 360)``: 0 faces east (+x), 90 south (+y); turning right adds."""


class SimWorld:
    """A first-person grid world: rooms, walls, moving objects, deterministic per seed.

    Args:
        width: Frame width in pixels.
        height: Frame height in pixels.
        seed: Fixes the start pose and the movers; the same seed and actions give the
            same frames.
        movers: Number of moving objects.
        move_speed: Cells per step walking with a full axis (forward or sideways).
        run_multiplier: Speed factor while run is held.
        turn_speed: Degrees per step with a full look axis.
        field_of_view: Horizontal field of view in degrees.
        layout: Floor plan rows (see :mod:`~ami.interaction.worlds.sim.grid_map`);
            None for the built-in six rooms.
    """

    def __init__(
        self,
        width: int = 84,
        height: int = 84,
        seed: int = 0,
        movers: int = 6,
        move_speed: float = 0.12,
        run_multiplier: float = 2.0,
        turn_speed: float = 12.0,
        field_of_view: float = 70.0,
        layout: Sequence[str] | None = None,
    ) -> None:
        check_size(width, height)
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise ValueError(f"seed must be an integer, got {seed!r}")
        if run_multiplier < 1.0:
            raise ValueError(f"run_multiplier must be >= 1, got {run_multiplier}")
        if not 0.0 < move_speed * run_multiplier <= 0.5:
            raise ValueError(
                f"move_speed * run_multiplier must be in (0, 0.5] cells per step (faster "
                f"would pass through walls), got move_speed={move_speed}, "
                f"run_multiplier={run_multiplier}"
            )
        if not 0.0 < turn_speed <= 90.0:
            raise ValueError(f"turn_speed must be in (0, 90] degrees per step, got {turn_speed}")
        self.grid = GridMap(DEFAULT_LAYOUT if layout is None else layout)
        self.renderer = Raycaster(self.grid, width, height, field_of_view)
        self.move_speed = move_speed
        self.run_multiplier = run_multiplier
        self._turn = math.radians(turn_speed)
        rng = np.random.default_rng(seed)
        start = self.grid.free_cells[rng.integers(len(self.grid.free_cells))]
        self._x, self._y = float(start[0]) + 0.5, float(start[1]) + 0.5
        self._heading = float(rng.uniform(0.0, 2.0 * math.pi))
        self.movers = Movers(self.grid, movers, rng, avoid=(int(start[0]), int(start[1])))
        self._lift = 0.0
        self._lift_velocity = 0.0
        self._jump_held = False
        self._visited = {(int(start[0]), int(start[1]))}
        self._jumped = False
        self.steps = 0

    @property
    def pose(self) -> Pose:
        """The agent's true position and heading."""
        return Pose(self._x, self._y, math.degrees(self._heading) % 360.0)

    @property
    def eye_height(self) -> float:
        """Eye height in cells: :data:`EYE_HEIGHT`, more during a hop."""
        return EYE_HEIGHT + self._lift

    @property
    def cells_visited(self) -> int:
        """Distinct map cells the agent's centre has entered, the start included."""
        return len(self._visited)

    def place(self, x: float, y: float, heading: float) -> None:
        """Put the agent at ``(x, y)`` facing ``heading`` degrees (tests, scripted runs).

        Raises:
            ValueError: The body would overlap a wall there.
        """
        if self.grid.blocked(np.array(x), np.array(y), BODY_RADIUS):
            raise ValueError(f"({x}, {y}) is inside or too close to a wall")
        self._x, self._y, self._heading = float(x), float(y), math.radians(heading)
        self._visited.add((int(x), int(y)))
        self._jumped = True

    def state_dict(self) -> dict[str, Any]:
        """The agent's pose and motion, what it has visited, the movers and the generator."""
        return {
            "pose": [self._x, self._y, self._heading],
            "lift": [self._lift, self._lift_velocity],
            "jump_held": self._jump_held,
            "visited": sorted(self._visited),
            "jumped": self._jumped,
            "steps": self.steps,
            "movers": self.movers.state_dict(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict` into a world built with the same layout and movers."""
        self._x, self._y, self._heading = (float(v) for v in state["pose"])
        self._lift, self._lift_velocity = (float(v) for v in state["lift"])
        self._jump_held = bool(state["jump_held"])
        self._visited = {(int(x), int(y)) for x, y in state["visited"]}
        self._jumped = bool(state["jumped"])
        self.steps = int(state["steps"])
        self.movers.load_state_dict(state["movers"])

    def take_jump(self) -> bool:
        """Whether :meth:`place` moved the agent since the last call (a jump, not a step)."""
        jumped, self._jumped = self._jumped, False
        return jumped

    def step(self, inputs: Inputs) -> None:
        """Advance one step holding ``inputs``: turn, move (sliding along walls), hop."""
        self._heading = (self._heading + inputs.look_horizontal * self._turn) % (2.0 * math.pi)
        forward_x, forward_y = math.cos(self._heading), math.sin(self._heading)
        move_x = inputs.vertical * forward_x - inputs.horizontal * forward_y
        move_y = inputs.vertical * forward_y + inputs.horizontal * forward_x
        length = math.hypot(move_x, move_y)
        if length > 1.0:  # diagonal walking is no faster than straight
            move_x, move_y = move_x / length, move_y / length
        speed = self.move_speed * (self.run_multiplier if inputs.run else 1.0)
        self._move(move_x * speed, move_y * speed)
        self._hop(inputs.jump)
        self.movers.step()
        self._visited.add((int(self._x), int(self._y)))
        self.steps += 1

    def _move(self, dx: float, dy: float) -> None:
        """Each axis separately, so that walking into a wall at an angle slides along it."""
        if dx and not self.grid.blocked(np.array(self._x + dx), np.array(self._y), BODY_RADIUS):
            self._x += dx
        if dy and not self.grid.blocked(np.array(self._x), np.array(self._y + dy), BODY_RADIUS):
            self._y += dy

    def _hop(self, jump: bool) -> None:
        """Jump on a press (as VRChat: holding the button does not jump again)."""
        if jump and not self._jump_held and self._lift == 0.0:
            self._lift_velocity = _JUMP_VELOCITY
        self._jump_held = jump
        if self._lift > 0.0 or self._lift_velocity > 0.0:
            self._lift += self._lift_velocity
            self._lift_velocity -= _GRAVITY
            if self._lift <= 0.0:
                self._lift, self._lift_velocity = 0.0, 0.0

    def render(self) -> Image:
        """The agent's view now: RGB ``uint8`` ``(H, W, 3)``."""
        return self.renderer.render(
            self._x, self._y, self._heading, self.eye_height, self.movers.sprites()
        )

    def metrics(self) -> dict[str, float]:
        """The true pose and exploration progress, for TensorBoard (``world/...``)."""
        x, y, heading = self.pose
        return {"x": x, "y": y, "heading": heading, "cells_visited": float(self.cells_visited)}
