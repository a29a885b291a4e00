"""The simulated world's looks: one wall pattern, floor and ceiling colour per room.

Every room differs in hue *and* pattern, so rooms stay distinguishable in grey or at
low resolution; the landmarks are high-contrast patterns that occur once. Textures are
plain formulas (no randomness), so the world looks the same for every seed.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt

TEXTURE_SIZE: Final = 16
"""Texels per wall cell side; rows are ``v`` (top to bottom), columns ``u``."""

Floats = npt.NDArray[np.float32]

ROOM_FLOORS: Final[Floats] = np.array(
    [
        [0.35, 0.18, 0.14],
        [0.16, 0.20, 0.36],
        [0.14, 0.32, 0.16],
        [0.42, 0.36, 0.14],
        [0.30, 0.16, 0.34],
        [0.12, 0.32, 0.32],
    ],
    dtype=np.float32,
)
ROOM_CEILINGS: Final[Floats] = np.array(
    [
        [0.80, 0.70, 0.68],
        [0.66, 0.72, 0.86],
        [0.70, 0.84, 0.70],
        [0.88, 0.86, 0.66],
        [0.80, 0.70, 0.84],
        [0.66, 0.84, 0.84],
    ],
    dtype=np.float32,
)


def _grid() -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    v, u = np.mgrid[0:TEXTURE_SIZE, 0:TEXTURE_SIZE]
    return v, u


def _two_tone(mask: npt.NDArray[np.bool_], on: tuple[float, ...], off: tuple[float, ...]) -> Floats:
    return np.where(mask[..., None], np.array(on), np.array(off)).astype(np.float32)


def wall_textures() -> Floats:
    """``(9, T, T, 3)`` RGB in ``[0, 1]``: six room walls, then three landmarks."""
    v, u = _grid()
    half = TEXTURE_SIZE // 2
    brick_shift = np.where((v // 4) % 2 == 1, half // 2, 0)
    mortar = (v % 4 == 0) | ((u + brick_shift) % half == 0)
    rings = (np.hypot(u - half + 0.5, v - half + 0.5) // 2.5).astype(np.intp) % 2 == 0
    cross = (np.abs(u - half + 0.5) < 2) | (np.abs(v - half + 0.5) < 2)
    textures = [
        _two_tone(mortar, (0.80, 0.78, 0.74), (0.72, 0.26, 0.20)),  # a: red brick
        _two_tone((u // 4) % 2 == 0, (0.24, 0.34, 0.86), (0.42, 0.52, 0.95)),  # b: blue stripes
        _two_tone((v // 4) % 2 == 0, (0.20, 0.62, 0.24), (0.48, 0.80, 0.40)),  # c: green bands
        _two_tone((u // 4 + v // 4) % 2 == 0, (0.92, 0.80, 0.22), (0.70, 0.55, 0.10)),  # d
        _two_tone((u % 4 == 2) & (v % 4 == 2), (0.95, 0.85, 0.98), (0.52, 0.24, 0.62)),  # e
        _two_tone(((u + v) // 3) % 2 == 0, (0.15, 0.58, 0.60), (0.55, 0.88, 0.86)),  # f
        _two_tone(rings, (0.98, 0.98, 0.98), (0.05, 0.05, 0.05)),  # 1: target
        _two_tone(cross, (0.15, 0.10, 0.05), (1.00, 0.55, 0.05)),  # 2: orange cross
    ]
    hue = (u / TEXTURE_SIZE * 6.0).astype(np.float32)
    red = np.clip(np.abs(hue - 3.0) - 1.0, 0, 1)
    green = np.clip(2.0 - np.abs(hue - 2.0), 0, 1)
    blue = np.clip(2.0 - np.abs(hue - 4.0), 0, 1)
    rainbow = np.stack([red, green, blue], axis=-1)
    textures.append(rainbow.astype(np.float32))  # 3: rainbow
    return np.stack(textures)
