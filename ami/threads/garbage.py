"""Python's cyclic garbage collector, kept off the agent's deadlines.

Python collects in whichever thread happens to allocate when a generation's counter
overflows, and a collection holds the GIL: a collection that the training thread
triggers a moment before the agent's deadline delays the agent's step by its length.
Two modes (``threads.gc``):

- ``auto``: Python's own schedule (with ``threads.freeze_gc`` hiding the start-up
  objects, so that full collections stay short);
- ``inference``: automatic collection is off for the run, and the inference thread
  collects right after each of its steps, in the slack before its next deadline
  (:class:`SlackCollector`): the young generation every step, the middle one every
  10th, everything every 100th, Python's own ratios. Nothing collects at any other
  moment, so no collection can fall on a deadline.

Either way :class:`GcWatch` counts every collection of any thread, charted per agent
step as ``inference/gc_collections``: a late step with a collection beside it may have
been the collector's; one without was not.
"""

from __future__ import annotations

import gc
from typing import Literal, TypeAlias

GcMode: TypeAlias = Literal["auto", "inference"]
GC_MODES: tuple[GcMode, ...] = ("auto", "inference")


def check_gc_mode(key: str, value: object) -> GcMode:
    """``value`` if it is a mode, or a ValueError naming ``key`` and the modes."""
    for mode in GC_MODES:
        if value == mode:
            return mode
    raise ValueError(f"{key}={value!r}: expected one of {', '.join(GC_MODES)}")


class GcWatch:
    """Counts the collector's runs, in every thread, between two :meth:`take`.

    It reads the interpreter's own counters (``gc.get_stats``) instead of timing each
    collection from ``gc.callbacks``: a Python callback runs inside the collection, and a
    Ctrl+C that arrives while one runs on the main thread is raised in the callback, where
    Python swallows it ("Exception ignored in gc callback"): the run would ignore Ctrl+C.
    """

    def __init__(self) -> None:
        self._seen = _collections()

    def take(self) -> int:
        """Collections (any generation, any thread) since the last call."""
        now = _collections()
        counted, self._seen = now - self._seen, now
        return counted


def _collections() -> int:
    return sum(int(generation["collections"]) for generation in gc.get_stats())


class SlackCollector:
    """Collections on the inference thread's schedule, after its steps.

    A step that leaves less than ``margin`` of the interval before the next deadline
    postpones its collection (an overrunning agent gets no extra work), but never more
    than ``patience`` times in a row: garbage must not pile up without bound.

    Args:
        margin: Share of the interval that must be left to collect.
        patience: Postponements in a row before a collection happens regardless.
    """

    MIDDLE_EVERY = 10
    FULL_EVERY = 100

    def __init__(self, margin: float = 0.2, patience: int = 10) -> None:
        self.margin = margin
        self.patience = patience
        self._done = 0
        self._postponed = 0

    def after_step(self, seconds_left: float, interval: float) -> int | None:
        """Collect if there is time (or patience ran out); the generation collected."""
        if seconds_left < self.margin * interval and self._postponed < self.patience:
            self._postponed += 1
            return None
        self._postponed = 0
        self._done += 1
        if self._done % self.FULL_EVERY == 0:
            generation = 2
        elif self._done % self.MIDDLE_EVERY == 0:
            generation = 1
        else:
            generation = 0
        gc.collect(generation)
        return generation
