"""First-person rendering of a grid world by ray casting, vectorised over screen columns.

One ray per screen column finds the first wall it meets. Instead of stepping cell by
cell in a Python loop (the classic DDA), every ray's crossings of the vertical grid
lines (and, separately, of the horizontal ones) are computed at once as a ``(W, K)``
array, ``K`` = the map's size; the first crossing that enters a wall cell is the hit.
That is exact and costs a few dozen numpy calls per frame, whatever the frame size.
Floors and ceilings are cast per pixel the same way, and sprites are drawn far to near
against the walls' depth per column. A noisy screen (:mod:`.screen`), when there is one,
replaces part of one wall face's texels with its picture.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from ami.interaction.io.frames import Image
from ami.interaction.worlds.sim.grid_map import GridMap
from ami.interaction.worlds.sim.screen import NoisyScreen
from ami.interaction.worlds.sim.textures import (
    ROOM_CEILINGS,
    ROOM_FLOORS,
    TEXTURE_SIZE,
    Floats,
    wall_textures,
)

Array = npt.NDArray[np.float64]
Indices = npt.NDArray[np.intp]

_FOG = 0.08
"""Brightness falls as ``1 / (1 + _FOG * distance)``: a depth cue, as in a hazy room."""


def fog(distance: Array | float) -> Array:
    """Brightness factor at ``distance`` cells."""
    return np.asarray(1.0 / (1.0 + _FOG * np.asarray(distance)))


@dataclass(frozen=True)
class Sprites:
    """Billboards to draw: balls (``round``) or boxes, all facing the camera."""

    positions: Array
    """``(N, 2)`` floor positions ``x, y`` in cells."""
    radius: Array
    """``(N,)`` half-size in cells."""
    lift: Array
    """``(N,)`` height of the centre above the floor, in cells (the ceiling is at 1)."""
    colours: Floats
    """``(N, 3)`` RGB in ``[0, 1]``."""
    round: npt.NDArray[np.bool_]
    """``(N,)`` ball (True) or box (False)."""


class View(NamedTuple):
    """A rendered frame and what it shows of the noisy screen."""

    image: Image
    """RGB ``uint8`` ``(H, W, 3)``."""
    screen_columns: npt.NDArray[np.bool_]
    """``(W,)``: the columns whose wall is the screen's face (a mover may hide part of it)."""


@dataclass(frozen=True)
class WallHits:
    """Per ray: the first wall it meets."""

    distance: Array
    """In lengths of the ray (for the camera's rays: depth along the view axis)."""
    hit_x: Indices
    """The wall cell hit."""
    hit_y: Indices
    from_x: Indices
    """The floor cell the ray came from: the side of the wall it sees."""
    from_y: Indices
    along: Array
    """Where across the cell's face, in ``[0, 1)``."""
    across_y: npt.NDArray[np.bool_]
    """Whether the face lies along x (the ray crossed a horizontal grid line)."""


@dataclass(frozen=True)
class _Hits:
    distance: Array
    cell_a: Indices
    cell_b: Indices
    along: Array
    step: Indices


class Raycaster:
    """Renders views of one :class:`GridMap` at one frame size.

    Args:
        grid: The floor plan.
        width: Frame width in pixels.
        height: Frame height in pixels.
        field_of_view: Horizontal field of view in degrees; pixels are square.
    """

    def __init__(self, grid: GridMap, width: int, height: int, field_of_view: float) -> None:
        if not 10.0 <= field_of_view <= 150.0:
            raise ValueError(f"field_of_view must be in 10..150 degrees, got {field_of_view}")
        self.grid = grid
        self.width = width
        self.height = height
        self._tan_half = math.tan(math.radians(field_of_view) / 2.0)
        self.focal = width / 2.0 / self._tan_half
        """Pixels per cell at distance 1, both directions."""
        self._camera_x = (np.arange(width) + 0.5) * 2.0 / width - 1.0
        self._rows = np.arange(height) + 0.5 - height / 2.0
        self._floor_rows = self._rows > 0
        self._steps = np.arange(max(grid.width, grid.height) + 1, dtype=np.float64)
        self._columns = np.arange(width)
        self._no_screen = np.zeros(width, dtype=bool)
        self._no_screen.flags.writeable = False
        self._textures = wall_textures()

    def render(
        self, x: float, y: float, heading: float, eye: float, sprites: Sprites | None = None
    ) -> Image:
        """The view from ``(x, y)`` facing ``heading`` (radians), eyes ``eye`` cells high.

        Returns:
            RGB ``uint8`` ``(H, W, 3)``.
        """
        return self.render_view(x, y, heading, eye, sprites).image

    def render_view(
        self,
        x: float,
        y: float,
        heading: float,
        eye: float,
        sprites: Sprites | None = None,
        screen: NoisyScreen | None = None,
    ) -> View:
        """As :meth:`render`, with a noisy screen on its wall and the columns it covers."""
        dir_x, dir_y = math.cos(heading), math.sin(heading)
        right_x, right_y = -dir_y, dir_x  # y points "down" the map: turning right adds angle
        ray_x = dir_x + right_x * self._tan_half * self._camera_x
        ray_y = dir_y + right_y * self._tan_half * self._camera_x
        hits = self.cast(x, y, ray_x, ray_y, self._columns)
        depth = hits.distance
        landmark = self.grid.landmark[hits.hit_y, hits.hit_x]
        # A plain wall shows the room it faces: the cell the ray came from.
        texture = np.where(landmark >= 0, landmark, self.grid.room[hits.from_y, hits.from_x])
        # Faces across x are drawn darker, so that corners read as corners.
        shade = (fog(depth) * np.where(hits.across_y, 1.0, 0.78)).astype(np.float32)
        image = self._floor_and_ceiling(x, y, eye, ray_x, ray_y)
        v = self._rows[:, None] * (depth / self.focal)[None, :] + (1.0 - eye)
        is_wall = (v >= 0.0) & (v < 1.0)
        vi = np.clip((v * TEXTURE_SIZE).astype(np.intp), 0, TEXTURE_SIZE - 1)
        ui = np.clip((hits.along * TEXTURE_SIZE).astype(np.intp), 0, TEXTURE_SIZE - 1)
        walls = self._textures[texture[None, :], vi, ui[None, :]]
        on_screen = self._no_screen if screen is None else _paint_screen(walls, v, hits, screen)
        image = np.where(is_wall[..., None], walls * shade[None, :, None], image)
        if sprites is not None:
            self._draw_sprites(image, x, y, (dir_x, dir_y), eye, depth, sprites)
        result: Image = (image * 255.0 + 0.5).astype(np.uint8)
        return View(result, on_screen)

    def cast(
        self, x: float, y: float, ray_x: Array, ray_y: Array, rays: Indices | None = None
    ) -> WallHits:
        """The first wall each ray from ``(x, y)`` meets (``rays``: ``arange(len(ray_x))``)."""
        rays = np.arange(len(ray_x)) if rays is None else rays
        grid = self.grid
        across_x = self._first_hits(x, y, ray_x, ray_y, grid.wall.T, rays)  # vertical lines
        across_y = self._first_hits(y, x, ray_y, ray_x, grid.wall, rays)  # horizontal lines
        use_y = across_y.distance < across_x.distance
        hit_x = np.where(use_y, across_y.cell_b, across_x.cell_a)
        hit_y = np.where(use_y, across_y.cell_a, across_x.cell_b)
        along = np.where(use_y, across_y.along, across_x.along)
        return WallHits(
            distance=np.minimum(across_x.distance, across_y.distance),
            hit_x=hit_x,
            hit_y=hit_y,
            from_x=np.where(use_y, hit_x, hit_x - across_x.step),
            from_y=np.where(use_y, hit_y - across_y.step, hit_y),
            along=along - np.floor(along),
            across_y=use_y,
        )

    def _first_hits(
        self,
        a: float,
        b: float,
        ray_a: Array,
        ray_b: Array,
        wall_ab: npt.NDArray[np.bool_],
        columns: Indices,
    ) -> _Hits:
        """First wall entered across the grid lines ``a = integer`` (``wall_ab[a, b]``)."""
        ray_a = np.where(np.abs(ray_a) < 1e-12, 1e-12, ray_a)
        forward = ray_a > 0
        step = np.where(forward, 1, -1)
        lines = (np.floor(a) + forward)[:, None] + step[:, None] * self._steps[None, :]
        t = (lines - a) / ray_a[:, None]
        b_at = b + t * ray_b[:, None]
        cell_a = np.clip(lines - (~forward)[:, None], 0, wall_ab.shape[0] - 1).astype(np.intp)
        cell_b = np.clip(np.floor(b_at), 0, wall_ab.shape[1] - 1).astype(np.intp)
        hits = wall_ab[cell_a, cell_b]
        first = hits.argmax(axis=1)
        found = hits[columns, first]
        return _Hits(
            distance=np.where(found, t[columns, first], np.inf),
            cell_a=cell_a[columns, first],
            cell_b=cell_b[columns, first],
            along=b_at[columns, first],
            step=step,
        )

    def _floor_and_ceiling(
        self, x: float, y: float, eye: float, ray_x: Array, ray_y: Array
    ) -> Floats:
        """Per pixel: the floor (checkered) or ceiling colour of the room it shows."""
        grid = self.grid
        height_above = np.where(self._floor_rows, eye, 1.0 - eye)
        distance = height_above * self.focal / np.abs(self._rows)
        px = x + distance[:, None] * ray_x[None, :]
        py = y + distance[:, None] * ray_y[None, :]
        cx = np.clip(px.astype(np.intp), 0, grid.width - 1)
        cy = np.clip(py.astype(np.intp), 0, grid.height - 1)
        room = grid.room[cy, cx]
        checker = ((np.floor(px * 2.0) + np.floor(py * 2.0)) % 2.0) * 0.18 + 0.82
        light = np.where(self._floor_rows[:, None], checker, 1.0) * fog(distance)[:, None]
        colours = np.where(self._floor_rows[:, None, None], ROOM_FLOORS[room], ROOM_CEILINGS[room])
        shaded: Floats = (colours * light[..., None]).astype(np.float32)
        return shaded

    def _draw_sprites(
        self,
        image: Floats,
        x: float,
        y: float,
        direction: tuple[float, float],
        eye: float,
        depth: Array,
        sprites: Sprites,
    ) -> None:
        """Paint sprites far to near, each column only where it is nearer than the wall."""
        dir_x, dir_y = direction
        rel_x = sprites.positions[:, 0] - x
        rel_y = sprites.positions[:, 1] - y
        forward = rel_x * dir_x + rel_y * dir_y
        lateral = -rel_x * dir_y + rel_y * dir_x
        for index in np.argsort(-forward):
            distance = float(forward[index])
            if distance < 0.1:
                continue
            scale = self.focal / distance
            centre_x = self.width / 2.0 + lateral[index] * scale
            centre_y = self.height / 2.0 + (eye - sprites.lift[index]) * scale
            radius = float(sprites.radius[index]) * scale
            x0, x1 = max(int(centre_x - radius), 0), min(int(centre_x + radius) + 1, self.width)
            y0, y1 = max(int(centre_y - radius), 0), min(int(centre_y + radius) + 1, self.height)
            if x0 >= x1 or y0 >= y1:
                continue
            cols = (np.arange(x0, x1) + 0.5 - centre_x)[None, :]
            rows = (np.arange(y0, y1) + 0.5 - centre_y)[:, None]
            if sprites.round[index]:
                inside = cols**2 + rows**2 <= radius**2
                shine = np.hypot(cols + 0.35 * radius, rows + 0.35 * radius) / (1.4 * radius)
                shade = 1.0 - 0.55 * np.clip(shine, 0.0, 1.0)
            else:
                inside = (np.abs(cols) <= radius) & (np.abs(rows) <= radius)
                edge = np.maximum(np.abs(cols), np.abs(rows)) > 0.7 * radius
                shade = np.where(edge, 0.65, 1.0)
            inside &= (distance < depth[x0:x1])[None, :]
            colour = sprites.colours[index] * float(fog(distance))
            patch = image[y0:y1, x0:x1]
            patch[inside] = (shade[..., None] * colour)[inside]


def _paint_screen(
    walls: Floats, v: Array, hits: WallHits, screen: NoisyScreen
) -> npt.NDArray[np.bool_]:
    """Put the screen's picture on the wall texels it covers; returns the columns it is in."""
    place = screen.place
    on, across = place.locate(hits.hit_x, hits.hit_y, hits.from_x, hits.from_y, hits.along)
    columns = np.flatnonzero(on)
    if columns.size:
        rows, texels = place.texels
        down = (v[:, columns] - place.top) / (place.bottom - place.top)
        inside = (down >= 0.0) & (down < 1.0)
        row = np.clip((down * rows).astype(np.intp), 0, rows - 1)
        column = np.clip((across[columns] * texels).astype(np.intp), 0, texels - 1)
        picture = screen.texture[row, column[None, :]]
        walls[:, columns] = np.where(inside[..., None], picture, walls[:, columns])
    return on
