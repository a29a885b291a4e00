"""``ami/Grid-v0``: a pixel world for Gymnasium that needs no display and no system library.

Gymnasium's own pixel envs need pygame, Box2D, MuJoCo or the Atari ROMs; this one is
numpy only, so the image path of :class:`~ami.interaction.worlds.GymEnvironment`
(``uint8`` ``(H, W, 3)`` -> ``image``) runs anywhere, tests and CI included::

    python scripts/launch.py interaction=gym interaction.env_id=ami/Grid-v0

The agent (a red square) walks a grid to a goal (a green square) placed at random
each episode: reward 1 and the episode ends (terminated) on reaching it, -0.01 for
every other step; Gymnasium's time limit truncates an episode after 100 steps.
Registered on the first use of Gymnasium through this project
(:func:`~ami.interaction.worlds.gym.gymnasium`) or by importing this module.
"""

from __future__ import annotations

from typing import Any, Final

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from typing_extensions import override

GRID_ID: Final = "ami/Grid-v0"

_MOVES: Final = ((0, 0), (-1, 0), (1, 0), (0, -1), (0, 1))
"""Row and column change of each action: stay, up, down, left, right."""
_BACKGROUND: Final = (40, 40, 40)
_AGENT: Final = (220, 40, 40)
_GOAL: Final = (40, 200, 60)


class GridWorld(gym.Env[np.ndarray, np.int64]):
    """Reach the goal on a ``cells`` x ``cells`` grid, seen from above.

    Args:
        cells: Grid side, in cells.
        cell_pixels: Pixels per cell side; the image is ``cells * cell_pixels`` square.
        render_mode: None or ``rgb_array`` (the observation itself).
    """

    metadata: dict[str, Any] = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(self, cells: int = 6, cell_pixels: int = 8, render_mode: str | None = None):
        if cells < 2 or cell_pixels < 1:
            raise ValueError(
                f"GridWorld needs cells >= 2 and cell_pixels >= 1, got {cells}, {cell_pixels}"
            )
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"GridWorld renders rgb_array only, got render_mode={render_mode!r}")
        self.cells, self.cell_pixels, self.render_mode = int(cells), int(cell_pixels), render_mode
        side = self.cells * self.cell_pixels
        self.observation_space = spaces.Box(0, 255, (side, side, 3), np.uint8)
        self.action_space = spaces.Discrete(len(_MOVES))
        self.agent = np.zeros(2, np.int64)
        self.goal = np.zeros(2, np.int64)

    @override
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        self.agent = self.np_random.integers(0, self.cells, 2)
        self.goal = self.agent
        while (self.goal == self.agent).all():
            self.goal = self.np_random.integers(0, self.cells, 2)
        return self._frame(), {}

    @override
    def step(self, action: np.int64) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        move = np.asarray(_MOVES[int(action)])
        self.agent = np.clip(self.agent + move, 0, self.cells - 1)
        reached = bool((self.agent == self.goal).all())
        return self._frame(), 1.0 if reached else -0.01, reached, False, {}

    @override
    def render(self) -> np.ndarray | None:
        return self._frame() if self.render_mode == "rgb_array" else None

    def _frame(self) -> np.ndarray:
        side = self.cells * self.cell_pixels
        frame = np.empty((side, side, 3), np.uint8)
        frame[:] = _BACKGROUND
        for (row, col), colour in ((self.goal, _GOAL), (self.agent, _AGENT)):
            top, left = row * self.cell_pixels, col * self.cell_pixels
            frame[top : top + self.cell_pixels, left : left + self.cell_pixels] = colour
        return frame


def register() -> None:
    """Register ``ami/Grid-v0`` with Gymnasium (idempotent)."""
    if GRID_ID not in gym.registry:
        gym.register(GRID_ID, entry_point=f"{__name__}:GridWorld", max_episode_steps=100)


register()
