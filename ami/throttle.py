"""Let something happen at most once per interval: warnings, image panels."""

from __future__ import annotations

import time


class Throttle:
    """Answers "is it time again?" so repeated events do not flood logs or TensorBoard.

    The first call is always ready.

    Args:
        interval: Least seconds between two ready answers.
    """

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._last = -float("inf")

    def ready(self) -> bool:
        """True (and the interval restarts) if ``interval`` passed since the last True."""
        now = time.monotonic()
        if now - self._last < self.interval:
            return False
        self._last = now
        return True
