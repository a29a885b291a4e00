"""The simulated world's state and physics: a body that walks, turns and hops among movers.

It takes the same :class:`~ami.interaction.io.actions.Inputs` as VRChat (axes in
``[-1, 1]``, buttons held), so the direct sim and the sim behind OSC run one physics.
One :meth:`SimWorld.step` is one inference step; speeds are per step. With
``noisy_tv`` a wall screen shows fresh noise every step (:mod:`.screen`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any, Final, NamedTuple

import numpy as np
import numpy.typing as npt

from ami.interaction.io.actions import Inputs
from ami.interaction.io.frames import Image, check_size
from ami.interaction.worlds.sim.grid_map import DEFAULT_LAYOUT, GridMap
from ami.interaction.worlds.sim.movers import Movers
from ami.interaction.worlds.sim.raycaster import Raycaster
from ami.interaction.worlds.sim.screen import SCREEN_REACH, NoisyScreen, default_place

logger = logging.getLogger(__name__)

BODY_RADIUS: Final = 0.2
"""Half-size of the agent's square body, in cells: it stops this far from walls."""
EYE_HEIGHT: Final = 0.5
"""Eye height standing, in cells (the ceiling is at 1)."""
_JUMP_VELOCITY: Final = 0.1
_GRAVITY: Final = 0.04
"""A hop lasts 6 steps and lifts the eyes by 0.18 cells."""
_LEAST_BUMP: Final = 1e-6
"""Cells: a blocked axis move shorter than this is rounding (cos 90 degrees), not a bump."""


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
        noisy_tv: Hang a noisy screen on the north wall of room b
            (:func:`~ami.interaction.worlds.sim.screen.default_place`); a jump press
            facing it within :data:`~ami.interaction.worlds.sim.screen.SCREEN_REACH`
            cells switches its channel. Off, the world is exactly the one without it.
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
        noisy_tv: bool = False,
    ) -> None:
        check_size(width, height)
        if not isinstance(noisy_tv, bool):
            raise ValueError(f"interaction.world.noisy_tv must be true or false, got {noisy_tv!r}")
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
        self._visited: dict[tuple[int, int], int] = {(int(start[0]), int(start[1])): 0}
        """Each cell the agent's centre has entered -> the step it first did (coverage map)."""
        self.cells_total = len(self.grid.free_cells)
        """Floor cells: all the agent can ever visit, so ``cells_visited / cells_total`` is
        the share of the map explored (a layout's sealed-off floor counts too)."""
        self._jumped = False
        self.steps = 0
        self.walked = 0.0
        """Cells the body moved in the last :meth:`step` (not a :meth:`place`): footsteps."""
        self.bumped = False
        """Whether a wall stopped the last :meth:`step`'s move on some axis: a bump."""
        self.screen: NoisyScreen | None = None
        """The noisy TV, None without ``noisy_tv``."""
        self._screen_columns = np.zeros(width, dtype=bool)
        if noisy_tv:
            try:
                self.screen = NoisyScreen(default_place(self.grid), seed)
            except ValueError as error:
                raise ValueError(
                    f"interaction.world.noisy_tv=true needs the built-in layout's screen wall: "
                    f"{error}"
                ) from None

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

    @property
    def screen_fraction(self) -> float:
        """Share of the last rendered frame's columns that showed the screen (0 without one)."""
        return 0.0 if self.screen is None else self.screen.in_view

    @property
    def screen_columns(self) -> npt.NDArray[np.bool_]:
        """``(W,)``: which columns of the last rendered frame showed the screen (tests)."""
        return self._screen_columns.copy()

    def place(self, x: float, y: float, heading: float) -> None:
        """Put the agent at ``(x, y)`` facing ``heading`` degrees (tests, scripted runs).

        Raises:
            ValueError: The body would overlap a wall there.
        """
        if self.grid.blocked(np.array(x), np.array(y), BODY_RADIUS):
            raise ValueError(f"({x}, {y}) is inside or too close to a wall")
        self._x, self._y, self._heading = float(x), float(y), math.radians(heading)
        self._visit(int(x), int(y))
        self._jumped = True

    @property
    def first_visits(self) -> npt.NDArray[np.int64]:
        """``(H, W)`` like :attr:`GridMap.wall`: the step each cell was first entered, -1 never.

        Cells restored from a checkpoint that did not keep the order read 0, the oldest.
        """
        steps = np.full(self.grid.wall.shape, -1, dtype=np.int64)
        for (x, y), step in self._visited.items():
            steps[y, x] = step
        return steps

    def _visit(self, x: int, y: int) -> None:
        """Note cell ``(x, y)`` entered now; a cell keeps the step it was first entered."""
        self._visited.setdefault((x, y), self.steps)

    def state_dict(self) -> dict[str, Any]:
        """The agent's pose and motion, what it visited when, the movers and the generators."""
        visited = sorted(self._visited)
        state: dict[str, Any] = {
            "pose": [self._x, self._y, self._heading],
            "lift": [self._lift, self._lift_velocity],
            "jump_held": self._jump_held,
            "visited": visited,
            "first_visit": [self._visited[cell] for cell in visited],
            "jumped": self._jumped,
            "steps": self.steps,
            "movers": self.movers.state_dict(),
        }
        if self.screen is not None:
            state["screen"] = self.screen.state_dict()
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict` into a world built with the same layout and movers.

        A state saved before the world kept the order of first visits (no
        ``first_visit``) still loads: its visited cells count as first entered at step 0,
        so the coverage map shows them in the oldest colour.
        """
        self._x, self._y, self._heading = (float(v) for v in state["pose"])
        self._lift, self._lift_velocity = (float(v) for v in state["lift"])
        self._jump_held = bool(state["jump_held"])
        cells = [(int(x), int(y)) for x, y in state["visited"]]
        first = state.get("first_visit")
        if first is None:
            first = [0] * len(cells)
        elif len(first) != len(cells):
            raise ValueError(
                f"the saved world's first_visit has {len(first)} steps for {len(cells)} "
                "visited cells; it needs one per cell"
            )
        self._visited = {cell: int(step) for cell, step in zip(cells, first, strict=True)}
        self._jumped = bool(state["jumped"])
        self.steps = int(state["steps"])
        self.movers.load_state_dict(state["movers"])
        if self.screen is not None:
            if "screen" in state:
                self.screen.load_state_dict(state["screen"])
            else:
                logger.warning(
                    "the saved world had no noisy TV (interaction.world.noisy_tv was false): "
                    "the screen starts as a new world's would"
                )

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
        pressed = inputs.jump and not self._jump_held
        if pressed and self.screen is not None and self._facing_screen(self.screen):
            self.screen.switch()
        self._hop(inputs.jump)
        self.movers.step()
        if self.screen is not None:
            self.screen.refresh()
        self.steps += 1
        self._visit(int(self._x), int(self._y))

    def _move(self, dx: float, dy: float) -> None:
        """Each axis separately, so that walking into a wall at an angle slides along it."""
        moved_x = moved_y = 0.0
        self.bumped = False
        if dx:
            if self.grid.blocked(np.array(self._x + dx), np.array(self._y), BODY_RADIUS):
                self.bumped = abs(dx) > _LEAST_BUMP
            else:
                self._x += dx
                moved_x = dx
        if dy:
            if self.grid.blocked(np.array(self._x), np.array(self._y + dy), BODY_RADIUS):
                self.bumped = self.bumped or abs(dy) > _LEAST_BUMP
            else:
                self._y += dy
                moved_y = dy
        self.walked = math.hypot(moved_x, moved_y)

    def _facing_screen(self, screen: NoisyScreen) -> bool:
        """Whether the line of sight meets the screen within reach (no wall before it)."""
        hits = self.renderer.cast(
            self._x,
            self._y,
            np.array([math.cos(self._heading)]),
            np.array([math.sin(self._heading)]),
        )
        on, _ = screen.place.locate(hits.hit_x, hits.hit_y, hits.from_x, hits.from_y, hits.along)
        return bool(on[0]) and float(hits.distance[0]) <= SCREEN_REACH

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
        view = self.renderer.render_view(
            self._x, self._y, self._heading, self.eye_height, self.movers.sprites(), self.screen
        )
        if self.screen is not None:
            self._screen_columns = view.screen_columns
            self.screen.record_view(self.steps, float(view.screen_columns.mean()))
        return view.image

    def metrics(self) -> dict[str, float]:
        """True pose, exploration and the screen's pull, for TensorBoard (``world/...``).

        ``cells_visited`` counts the floor cells entered so far and ``cells_total`` all
        floor cells (it never changes), so that ``cells_visited / cells_total`` is the
        share of the map explored, comparable across layouts.

        ``screen_in_view`` is the share of the last frame's columns showing the screen,
        ``screen_steps`` the steps whose frame showed it in at least
        :data:`~ami.interaction.worlds.sim.screen.SEEN_FRACTION` of them, and
        ``channel_switches`` the channel changes: all 0 without a screen, so that runs
        with and without one chart the same names.
        """
        x, y, heading = self.pose
        screen = self.screen
        return {
            "x": x,
            "y": y,
            "heading": heading,
            "cells_visited": float(self.cells_visited),
            "cells_total": float(self.cells_total),
            "screen_in_view": self.screen_fraction,
            "screen_steps": 0.0 if screen is None else float(screen.watched_steps),
            "channel_switches": 0.0 if screen is None else float(screen.switches),
        }
