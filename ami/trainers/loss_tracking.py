"""A trainer's loss in a few numbers: last, final (a recent mean), best, and a log window.

A sweep compares runs by these, so they must not hang on one noisy batch: ``final`` is
the mean of the last ``window`` optimizer steps, ``best`` the lowest such mean seen (the
lowest single batch would reward luck). The numbers are kept by the training thread
and read by the main thread (progress line, end-of-run metrics): each update replaces
one immutable :class:`LossNumbers` in a single assignment, so a reader never sees a
half-updated set. They cover the steps of this process: a resumed run starts them anew.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

from ami.config_checks import whole_number


@dataclass(frozen=True)
class LossNumbers:
    """The loss so far; every field is None until the first optimizer step."""

    steps: int = 0
    last: float | None = None
    final: float | None = None
    """Mean of the last ``window`` steps (fewer at the start)."""
    best: float | None = None
    """Lowest ``window``-step mean, once ``window`` steps have run; until then ``final``."""


@dataclass(frozen=True)
class LossWindow:
    """The steps since the previous log line, for ``training.log``."""

    steps: int
    mean: float
    low: float
    high: float
    last: float


class LossTracker:
    """Collects one trainer's loss per optimizer step (training thread only).

    Args:
        window: Steps averaged into ``final`` and ``best``.
    """

    def __init__(self, window: int = 50) -> None:
        self.window = whole_number("loss window", window)
        self.numbers = LossNumbers()
        self._recent: deque[float] = deque(maxlen=self.window)
        self._best_full: float | None = None
        self._log: list[float] = []

    def add(self, loss: float) -> None:
        """Record one step's loss; a non-finite loss counts as a step but not in the means."""
        steps = self.numbers.steps + 1
        if not math.isfinite(loss):
            self.numbers = LossNumbers(steps, loss, self.numbers.final, self.numbers.best)
            return
        self._recent.append(loss)
        final = sum(self._recent) / len(self._recent)
        if len(self._recent) == self.window:
            self._best_full = final if self._best_full is None else min(self._best_full, final)
        best = self._best_full if self._best_full is not None else final
        self.numbers = LossNumbers(steps, loss, final, best)
        self._log.append(loss)

    def take_window(self) -> LossWindow | None:
        """The finite losses since the last call (None if there were none), then forget them."""
        values, self._log = self._log, []
        if not values:
            return None
        return LossWindow(
            len(values), sum(values) / len(values), min(values), max(values), values[-1]
        )
