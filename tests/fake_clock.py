"""A clock the test moves by hand, for code that takes its time source as an argument."""

from __future__ import annotations


class ManualClock:
    """Stands in for ``time.monotonic`` or ``time.perf_counter``: the time is ``now``,
    and only the test (or a fake part it wires in) moves it, so timing code is checked
    against exact numbers on a machine of any speed or load."""

    def __init__(self, now: float = 100.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now
