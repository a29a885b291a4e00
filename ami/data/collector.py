"""The experience hand-off between the inference and the training thread.

Write permission moves with the data: the inference thread appends steps to the
pending queue it writes; the training thread takes the whole queue at once and leaves
an empty one in its place. The take is a reference swap under a lock held for a few
instructions, so it costs the same for ten steps as for a million, and the inference
thread is never blocked by the training side's work on what it took.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from ami.config_checks import whole_number
from ami.data.step import Step
from ami.sharing import Owned, writes
from ami.throttle import Throttle

logger = logging.getLogger(__name__)

_DROP_WARNING_INTERVAL = 10.0


@dataclass(frozen=True)
class TakenSteps:
    """What the training thread received in one take: it now owns these steps."""

    steps: Sequence[Step]
    dropped: int
    """Steps lost since the previous take because the pending queue was full."""

    def __len__(self) -> int:
        return len(self.steps)

    def __iter__(self) -> Iterator[Step]:
        return iter(self.steps)


class StepCollector(Owned):
    """Pending experience, appended by the inference thread, taken whole by training.

    Args:
        name: Name in logs, errors and metrics.
        max_pending: Most steps kept while training does not take them (e.g. while a
            long training run is in progress). Beyond it the oldest pending step is
            dropped, counted, reported in the next :class:`TakenSteps` and logged. None
            keeps everything, at the risk of running out of memory.
    """

    def __init__(self, name: str = "experience", max_pending: int | None = 100_000) -> None:
        super().__init__(name)
        if max_pending is not None:
            whole_number(f"{name}.max_pending", max_pending)
        self._max_pending = max_pending
        self._lock = threading.Lock()
        self._pending: deque[Step] = deque()
        self._dropped_since_take = 0
        self._dropped_total = 0
        self._appended_total = 0
        self._drop_warnings = Throttle(_DROP_WARNING_INTERVAL)
        self._listeners: list[Callable[[], None]] = []

    @writes
    def on_append(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` after every append: the training thread's wake-up.

        Registered while the threads are built, before the writer moves to the
        inference thread.
        """
        self._listeners.append(listener)

    @writes
    def append(self, step: Step) -> None:
        """Queue one step for the training thread (inference thread only)."""
        dropped = False
        with self._lock:
            if self._max_pending is not None and len(self._pending) >= self._max_pending:
                self._pending.popleft()
                self._dropped_since_take += 1
                self._dropped_total += 1
                dropped = True
            self._pending.append(step)
            self._appended_total += 1
        if dropped:
            self._warn_dropped()
        for listener in self._listeners:
            listener()

    def take(self) -> TakenSteps:
        """Take every pending step, leaving an empty queue (training thread).

        The returned steps belong to the caller; the collector never touches them again.
        """
        empty: deque[Step] = deque()
        with self._lock:
            taken, self._pending = self._pending, empty
            dropped, self._dropped_since_take = self._dropped_since_take, 0
        return TakenSteps(taken, dropped)

    @property
    def pending(self) -> int:
        """Steps waiting to be taken (a snapshot)."""
        return len(self._pending)

    @property
    def appended_total(self) -> int:
        """Steps appended since creation, dropped ones included."""
        return self._appended_total

    @property
    def dropped_total(self) -> int:
        """Steps lost since creation because nobody took them in time."""
        return self._dropped_total

    def _warn_dropped(self) -> None:
        if self._drop_warnings.ready():
            logger.warning(
                "%s: pending queue full (%d steps); dropping the oldest steps "
                "(%d dropped so far). Training is not keeping up: raise max_pending "
                "or shorten training runs.",
                self.shared_name,
                self._max_pending,
                self._dropped_total,
            )
