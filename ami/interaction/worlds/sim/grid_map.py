"""The simulated world's floor plan: a grid of wall and floor cells, grouped into rooms.

A layout is written as text, one string per row: ``#`` is a plain wall, which takes
the look of the room it faces; ``1``-``3`` are landmark walls that look the same from
every side; a lowercase letter ``a``-``f`` is a floor cell of that room. Distinct rooms
and a few landmarks give a curious agent places to tell apart and a world model
something to learn; the border must be wall so that every ray hits something.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import numpy as np
import numpy.typing as npt

Coordinates = npt.NDArray[np.float64] | float

ROOMS: Final = "abcdef"
LANDMARKS: Final = "123"

DEFAULT_LAYOUT: Final = (
    "####1###################",
    "#aaaaaaa#bbbbbbb#cccccc#",
    "#aaaaaaa#bbbbbbb#cccccc#",
    "#aaaaaaaabbbbbbb#cccccc#",
    "#aaaaaaa#bbbbbbbbcccccc#",
    "#aaaaaaa#bbbbbbb#cccccc3",
    "#aaaaaaa#bbbbbbb#cccccc#",
    "####d#######e####cccccc#",
    "#ddddddd#eeeeeee#cccccc#",
    "#ddddddd#eeeeeee#cccccc#",
    "#ddddddd#eeeeeee###f####",
    "#ddddddd#eeeeeee#ffffff#",
    "#dddddddeee22eee#ffffff#",
    "#ddddddd#ee22eee#ffffff#",
    "#ddd#ddd#eeeeeeeeffffff#",
    "#ddddddd#eeeeeee#ffffff#",
    "#ddddddd#eeeeeee#ffffff#",
    "########################",
)
"""Six rooms joined by doorways, two pillars, three landmarks (24 x 18 cells)."""


class GridMap:
    """Cell arrays indexed ``[row, column]`` = ``[y, x]``, as the renderer looks them up.

    Args:
        rows: The layout, one string per row of equal length (see the module doc).

    Attributes:
        wall: True where a cell blocks movement and rays.
        room: Room index (0-5) of each floor cell; 0 under walls (never seen as floor).
        landmark: Texture index of each landmark wall (``len(ROOMS)`` + 0-2), else -1.
    """

    def __init__(self, rows: Sequence[str] = DEFAULT_LAYOUT) -> None:
        if not rows or any(len(row) != len(rows[0]) for row in rows) or len(rows[0]) < 3:
            raise ValueError("a layout needs >= 1 row, all of the same length >= 3")
        allowed = set("#" + ROOMS + LANDMARKS)
        for y, row in enumerate(rows):
            unknown = set(row) - allowed
            if unknown:
                raise ValueError(
                    f"layout row {y} has unknown cells {sorted(unknown)}; "
                    f"accepted: '#', rooms {ROOMS!r}, landmarks {LANDMARKS!r}"
                )
        cells = np.array([list(row) for row in rows])
        self.height, self.width = cells.shape
        self.wall: npt.NDArray[np.bool_] = ~np.isin(cells, list(ROOMS))
        border = np.concatenate([self.wall[0], self.wall[-1], self.wall[:, 0], self.wall[:, -1]])
        if not border.all():
            raise ValueError("the layout's border must be wall, so that every ray hits one")
        self.room = np.zeros(cells.shape, dtype=np.intp)
        self.landmark = np.full(cells.shape, -1, dtype=np.intp)
        for index, letter in enumerate(ROOMS):
            self.room[cells == letter] = index
        for index, digit in enumerate(LANDMARKS):
            self.landmark[cells == digit] = len(ROOMS) + index
        self.free_cells: npt.NDArray[np.intp] = np.argwhere(~self.wall)[:, ::-1].copy()
        """``(N, 2)`` columns ``x, y`` of every floor cell (spawn candidates)."""

    def blocked(self, x: Coordinates, y: Coordinates, radius: Coordinates) -> npt.NDArray[np.bool_]:
        """Whether a square body of half-size ``radius`` at each ``(x, y)`` touches a wall."""
        result = np.zeros(np.shape(x), dtype=bool)
        for dx in (-1.0, 1.0):
            for dy in (-1.0, 1.0):
                cx = np.clip(np.floor(x + dx * radius).astype(np.intp), 0, self.width - 1)
                cy = np.clip(np.floor(y + dy * radius).astype(np.intp), 0, self.height - 1)
                result |= self.wall[cy, cx]
        return result
