"""A top-down map of where the agent has been, for TensorBoard (``images/world/coverage``).

A coverage number says how much was explored; the map says how: whether the agent
swept room after room or circled one, and where the noisy TV held it. Walls are dark
grey, floor never entered light grey, entered floor coloured by the order of first
visit (blue the earliest, yellow the latest), the noisy TV red, and the agent a white
dot, rimmed black, with a short line along its heading. It is drawn rarely (once a
world minute), so plain drawing calls are cheap enough; it is never shown to the agent.
"""

from __future__ import annotations

import math
from typing import Final

import cv2
import numpy as np
import numpy.typing as npt

from ami.interaction.io.frames import Image
from ami.interaction.worlds.sim.world import SimWorld

MAX_SIDE: Final = 512
"""Pixels: the longest side a map gets; a large layout gets fewer pixels per cell."""
WALL: Final = (64, 64, 64)
FLOOR: Final = (191, 191, 191)
SCREEN: Final = (230, 25, 25)
AGENT: Final = (255, 255, 255)
OUTLINE: Final = (0, 0, 0)
_RAMP_START: Final = 0.25
"""Where on viridis the earliest cell sits: its darkest purple would read as wall."""


def _ramp(fractions: npt.NDArray[np.float64]) -> npt.NDArray[np.uint8]:
    """``(N, 3)`` RGB on viridis, from blue (0, first visited) to yellow (1, last)."""
    levels = np.round(255 * (_RAMP_START + (1 - _RAMP_START) * fractions)).astype(np.uint8)
    bgr = cv2.applyColorMap(levels.reshape(-1, 1), cv2.COLORMAP_VIRIDIS).reshape(-1, 3)
    return np.ascontiguousarray(bgr[:, ::-1])


def cell_scale(world: SimWorld, scale: int = 8) -> int:
    """Pixels per cell: ``scale``, less where the map would exceed :data:`MAX_SIDE`.

    Raises:
        ValueError: ``scale`` is not a positive integer.
    """
    if not isinstance(scale, int) or isinstance(scale, bool) or scale < 1:
        raise ValueError(f"the coverage map's scale must be an integer >= 1 pixels, got {scale!r}")
    longest = int(max(world.grid.width, world.grid.height))
    return max(1, min(scale, MAX_SIDE // longest))


def coverage_map(world: SimWorld, scale: int = 8) -> Image:
    """The map now, RGB ``uint8`` ``(H * s, W * s, 3)`` with ``s = cell_scale(world, scale)``.

    Cell ``(x, y)`` covers pixel rows ``y * s`` to ``(y + 1) * s`` and columns ``x * s``
    to ``(x + 1) * s``, so the picture reads like the layout's text (north up).
    """
    s = cell_scale(world, scale)
    grid = world.grid
    cells = np.empty((grid.height, grid.width, 3), dtype=np.uint8)
    cells[grid.wall] = WALL
    cells[~grid.wall] = FLOOR
    first = world.first_visits
    visited = first >= 0
    if visited.any():
        # Ranks, not steps: a long stay in one room does not wash out the rest of the
        # ramp, and cells restored without an order (all step 0) share the oldest colour.
        orders, rank = np.unique(first[visited], return_inverse=True)
        cells[visited] = _ramp(rank / max(1, len(orders) - 1))
    if world.screen is not None:
        for column, row in world.screen.place.cells:
            cells[row, column] = SCREEN
    image = np.ascontiguousarray(np.repeat(np.repeat(cells, s, axis=0), s, axis=1))
    x, y, heading = world.pose
    centre = (int(x * s), int(y * s))
    radians = math.radians(heading)
    tip = (int((x + 0.9 * math.cos(radians)) * s), int((y + 0.9 * math.sin(radians)) * s))
    thickness, radius = max(1, s // 6), max(1, s // 4)
    for colour, rim in ((OUTLINE, 1), (AGENT, 0)):  # dark rim: white on yellow stays seen
        cv2.line(image, centre, tip, colour, thickness=thickness + 2 * rim)
        cv2.circle(image, centre, radius + rim, colour, thickness=-1)
    return image
