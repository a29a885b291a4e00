"""The experience hand-off between the inference and the training thread.

Write permission moves with the data: the inference thread appends steps to the
pending queue it writes; the training thread takes the whole queue at once and leaves
an empty one in its place. The take is a reference swap under a lock held for a few
instructions, so it costs the same for ten steps as for a million, and the inference
thread is never blocked by the training side's work on what it took. Each side is
checked: only the writer appends, only the taker takes.

Continuity: every step belongs to a *segment*, a run of steps each of which directly
follows the one before. A new segment starts when the inference thread says so
(:meth:`StepCollector.begin_segment`: a pause, a world reset, a cut to another video)
and after every dropped step, so that models learning from sequences never learn a
jump that did not happen. Segment ids are unique within a collector; equal ids mean
one unbroken run.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from ami.config_checks import whole_number
from ami.data.step import Step
from ami.sharing import Owned, OwnershipError, writes
from ami.throttle import Throttle

logger = logging.getLogger(__name__)

_DROP_WARNING_INTERVAL = 10.0


class _Segment:
    """The id of a run of pending steps, shared by them so that a drop relabels all at once."""

    __slots__ = ("id",)

    def __init__(self, segment_id: int) -> None:
        self.id = segment_id


@dataclass(frozen=True)
class TakenSteps:
    """What the training thread received in one take: it now owns these steps."""

    entries: Sequence[tuple[Step, _Segment]]
    """The steps in order, each with its segment (read :attr:`segments` for the ids)."""
    dropped: int
    """Steps lost since the previous take because the pending queue was full."""

    def __len__(self) -> int:
        return len(self.entries)

    def __iter__(self) -> Iterator[Step]:
        return (step for step, _ in self.entries)

    @property
    def segments(self) -> list[int]:
        """Each step's segment id, in order."""
        return [segment.id for _, segment in self.entries]


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
        self._pending: deque[tuple[Step, _Segment]] = deque()
        self._taker = threading.current_thread()
        self._last_id = 0
        self._segment = _Segment(0)
        self._segment_used = False
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
    def begin_segment(self) -> None:
        """The next step does not follow the last one (pause, world reset, video cut).

        Idempotent until the next append: a pause and its resume make one break.
        """
        with self._lock:  # take() replaces the holder too
            if self._segment_used:
                self._segment = _Segment(self._next_id())
                self._segment_used = False

    @writes
    def append(self, step: Step) -> None:
        """Queue one step for the training thread (inference thread only)."""
        dropped = False
        with self._lock:
            if self._max_pending is not None and len(self._pending) >= self._max_pending:
                _, segment = self._pending.popleft()
                # The steps after the lost one no longer follow what was taken before it.
                segment.id = self._next_id()
                self._dropped_since_take += 1
                self._dropped_total += 1
                dropped = True
            self._pending.append((step, self._segment))
            self._segment_used = True
            self._appended_total += 1
        if dropped:
            self._warn_dropped()
        for listener in self._listeners:
            listener()

    def take(self) -> TakenSteps:
        """Take every pending step, leaving an empty queue (the taker's thread only).

        The returned steps belong to the caller; the collector never touches them again
        (the current segment continues under the same id, in a new holder that later
        drops can relabel without reaching into the taken steps).

        Raises:
            OwnershipError: Called from a thread other than the taker.
        """
        self._check_taker("take")
        empty: deque[tuple[Step, _Segment]] = deque()
        with self._lock:
            taken, self._pending = self._pending, empty
            dropped, self._dropped_since_take = self._dropped_since_take, 0
            self._segment = _Segment(self._segment.id)
        return TakenSteps(taken, dropped)

    @property
    def taker(self) -> threading.Thread:
        """The one thread allowed to take the pending steps."""
        return self._taker

    def transfer_taking_to(self, thread: threading.Thread) -> None:
        """Move the right to take to ``thread``; only the current taker may do this."""
        self._check_taker("transfer_taking_to")
        self._taker = thread

    def _check_taker(self, action: str) -> None:
        current = threading.current_thread()
        if current is not self._taker:
            raise OwnershipError(
                f"{self.shared_name}.{action}: thread {current.name!r} may not take steps; "
                f"thread {self._taker.name!r} takes them (moved with transfer_taking_to())"
            )

    def _next_id(self) -> int:
        self._last_id += 1
        return self._last_id

    @writes
    def state_dict(self) -> dict[str, int]:
        """The counters, and the last segment id given out (pending steps are not kept)."""
        return {
            "last_id": self._last_id,
            "appended_total": self._appended_total,
            "dropped_total": self._dropped_total,
        }

    @writes
    def load_state_dict(self, state: Mapping[str, int]) -> None:
        """Restore :meth:`state_dict`: ids continue after the saved ones.

        The run's start then begins a new segment (:meth:`begin_segment`, called by
        the inference thread), so the steps of a restored buffer and the new steps
        never share a segment across the gap in time.
        """
        with self._lock:
            self._last_id = int(state["last_id"])
            self._appended_total = int(state["appended_total"])
            self._dropped_total = int(state["dropped_total"])
            self._segment = _Segment(self._last_id)
            self._segment_used = True

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
