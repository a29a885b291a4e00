"""A noisy TV: a wall screen that shows fresh random noise every step, on switchable channels.

It is the standard trap for curiosity: an agent rewarded for what its model fails to
predict is drawn to noise that no model can predict, and stays there. Benchmarks turn
it on to see whether an agent is captured (issue #14's ``noisy_tv_ratio``); the agent
can even make new noise by switching channels, as in the original thought experiment.

The noise comes from a generator of its own, seeded from the world's seed on a separate
stream, so that turning the screen on changes nothing else in the world: the movers and
the start pose draw exactly what they draw without it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import torch

from ami.interaction.worlds.sim.grid_map import GridMap
from ami.interaction.worlds.sim.textures import TEXTURE_SIZE, Floats
from ami.state import generator_state, load_generator_state

CHANNELS: Final = ("grey", "colour", "blocks")
"""What the channels show: grey white noise, colour white noise, coarse colour blocks
(2, 4 or 8 texels, drawn anew every step)."""
SCREEN_REACH: Final = 2.0
"""Cells from the agent to the screen, along its line of sight, within which jump switches."""
SEEN_FRACTION: Final = 0.1
"""Share of the frame's columns the screen must cover for a step to count as watching it."""
_BLOCK_SIZES: Final = (2, 4, 8)
_BEZEL: Final = 0.08
"""Grey of the frame's one-texel rim: a TV has an edge, so the screen reads as an object."""
_STREAM: Final = 0x5C12EE
"""Spawn key of the screen's generator: a stream apart from the world's own."""

Cells = npt.NDArray[np.intp]


class ScreenPlace:
    """Where the screen hangs: across the faces of a straight run of wall cells.

    Args:
        grid: The floor plan the screen hangs in.
        cells: Wall cells ``(x, y)``, next to each other along one row or column.
        facing: ``(dx, dy)`` from each wall cell to the floor cell in front of it: the
            screen is seen from there.
        top: Upper edge, as a fraction of the wall's height from the ceiling.
        bottom: Lower edge, the same way.

    Raises:
        ValueError: The cells are not a straight run of walls with floor in front.
    """

    def __init__(
        self,
        grid: GridMap,
        cells: Sequence[tuple[int, int]],
        facing: tuple[int, int],
        top: float,
        bottom: float,
    ) -> None:
        if facing not in ((1, 0), (-1, 0), (0, 1), (0, -1)):
            raise ValueError(f"facing must be one step along an axis, got {facing}")
        if not 0.0 <= top < bottom <= 1.0:
            raise ValueError(f"need 0 <= top < bottom <= 1, got top={top}, bottom={bottom}")
        # Along the face: x for a north or south face, y for a west or east one.
        self._axis = 0 if facing[0] == 0 else 1
        along = sorted(cell[self._axis] for cell in cells)
        if not cells or along != list(range(along[0], along[0] + len(cells))):
            raise ValueError(f"the screen's cells must be a straight run, got {list(cells)}")
        if len({cell[1 - self._axis] for cell in cells}) != 1:
            raise ValueError(f"the screen's cells must be a straight run, got {list(cells)}")

        def inside(x: int, y: int) -> bool:
            return bool(0 <= x < grid.width and 0 <= y < grid.height)

        for x, y in cells:
            front_x, front_y = x + facing[0], y + facing[1]
            fits = inside(x, y) and inside(front_x, front_y)
            if not (fits and grid.wall[y, x] and not grid.wall[front_y, front_x]):
                raise ValueError(
                    f"the screen needs a wall at {(x, y)} with floor at {(front_x, front_y)}"
                )
        self.cells = tuple(cells)
        self.facing = facing
        self.top, self.bottom = top, bottom
        self.width = len(cells)
        """Cells along the face."""
        self._start = along[0]
        self._face = np.zeros(grid.wall.shape, dtype=bool)
        for x, y in cells:
            self._face[y, x] = True
        # The viewer looks along -facing; its right is (facing_y, -facing_x). Where that
        # runs against the axis, the screen's left edge is the far end of the run.
        right = (facing[1], -facing[0])[self._axis]
        self._mirrored = right < 0
        self.texels = (round((bottom - top) * TEXTURE_SIZE), self.width * TEXTURE_SIZE)
        """Texture rows and columns: as fine as the walls' patterns."""

    def locate(
        self, hit_x: Cells, hit_y: Cells, from_x: Cells, from_y: Cells, along: npt.NDArray[Any]
    ) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.float64]]:
        """Which rays hit the screen's face, and where across it, ``0`` (left) to ``1``.

        Args:
            hit_x: Per ray, the wall cell hit.
            hit_y: The same.
            from_x: Per ray, the floor cell the ray came from.
            from_y: The same.
            along: Per ray, the position across the hit cell's face, in ``[0, 1)``.
        """
        on = (
            self._face[hit_y, hit_x]
            & (from_x - hit_x == self.facing[0])
            & (from_y - hit_y == self.facing[1])
        )
        cell = hit_x if self._axis == 0 else hit_y
        across = (cell - self._start + along) / self.width
        if self._mirrored:
            across = 1.0 - across
        return on, np.asarray(across, dtype=np.float64)


def default_place(grid: GridMap) -> ScreenPlace:
    """The built-in world's screen: the north wall of room b (top middle), cells x 11-13.

    Room b joins rooms a, c and e, so an agent passes it often; the screen spans three
    of the wall's seven cells and three quarters of its height.

    Raises:
        ValueError: The layout has no such wall (a custom ``layout``).
    """
    return ScreenPlace(grid, [(11, 0), (12, 0), (13, 0)], facing=(0, 1), top=0.125, bottom=0.875)


class NoisyScreen:
    """The screen's picture and channel, its generator, and how much it was watched.

    Args:
        place: Where it hangs.
        seed: The world's seed; the noise is drawn from a stream of its own.
    """

    def __init__(self, place: ScreenPlace, seed: int) -> None:
        self.place = place
        self._rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(_STREAM,)))
        self.channel = 0
        """Index into :data:`CHANNELS`."""
        self.switches = 0
        """Channel changes so far."""
        self.texture: Floats = np.full((*place.texels, 3), _BEZEL, dtype=np.float32)
        """``(rows, columns, 3)`` RGB in ``[0, 1]``: what the screen shows now."""
        self.in_view = 0.0
        """Share of the last rendered frame's columns that showed the screen."""
        self.watched_steps = 0
        """Steps whose frame showed the screen in at least :data:`SEEN_FRACTION` of columns."""
        self._viewed_step = -1
        self.refresh()

    def switch(self) -> None:
        """The next channel (a press of jump in front of the screen)."""
        self.channel = (self.channel + 1) % len(CHANNELS)
        self.switches += 1

    def refresh(self) -> None:
        """Draw the next picture of the current channel (once per world step)."""
        rows, columns = self.place.texels[0] - 2, self.place.texels[1] - 2
        kind = CHANNELS[self.channel]
        if kind == "grey":
            noise = np.repeat(self._rng.random((rows, columns, 1), dtype=np.float32), 3, axis=2)
        elif kind == "colour":
            noise = self._rng.random((rows, columns, 3), dtype=np.float32)
        else:
            size = int(self._rng.choice(_BLOCK_SIZES))
            blocks = self._rng.random((-(-rows // size), -(-columns // size), 3), dtype=np.float32)
            noise = np.repeat(np.repeat(blocks, size, axis=0), size, axis=1)[:rows, :columns]
        self.texture[1:-1, 1:-1] = noise

    def record_view(self, step: int, fraction: float) -> None:
        """Note a rendered frame of world step ``step``; a step counts once however often drawn."""
        self.in_view = fraction
        if step != self._viewed_step:
            self._viewed_step = step
            if fraction >= SEEN_FRACTION:
                self.watched_steps += 1

    def state_dict(self) -> dict[str, Any]:
        """The picture, channel, counters and generator: a resume shows the same next frames."""
        return {
            "texture": torch.from_numpy(self.texture.copy()),
            "channel": self.channel,
            "switches": self.switches,
            "in_view": self.in_view,
            "watched_steps": self.watched_steps,
            "viewed_step": self._viewed_step,
            "rng": generator_state(self._rng),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict` (a screen of the same size)."""
        texture = state["texture"].numpy()
        if texture.shape != self.texture.shape:
            raise ValueError(
                f"the saved screen is {texture.shape[:2]} texels, this one {self.texture.shape[:2]}"
            )
        self.texture = texture.astype(np.float32, copy=True)
        self.channel = int(state["channel"])
        self.switches = int(state["switches"])
        self.in_view = float(state["in_view"])
        self.watched_steps = int(state["watched_steps"])
        self._viewed_step = int(state["viewed_step"])
        load_generator_state(self._rng, state["rng"])
