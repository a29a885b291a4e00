"""Hang detection: a background thread that owes a heartbeat and has gone silent.

Threads beat at their safe points (:meth:`~ami.system.ThreadControl.manage_loop`, between
agent steps and between optimizer steps). Silence only counts while a thread is
working: one that waits idle for data or sits parked for a pause waits on someone else
(see :meth:`~ami.system.ThreadControl.silent_for`). The main thread asks
:meth:`HangWatch.seconds_to_next_check` how long it may sleep in ``select()`` and
:meth:`HangWatch.find` whether anyone is hung, so a hang is found within one
``threads.hang_timeout`` of the last heartbeat without polling.
"""

from __future__ import annotations

import sys
import sysconfig
import traceback
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from ami.threads.background import BackgroundThread


@dataclass(frozen=True)
class Hang:
    """One thread found hung: what the status and the log say about it."""

    thread: BackgroundThread
    silent_seconds: float
    """Seconds since its last heartbeat."""
    doing: str
    """Its activity at the last heartbeat (running, or stopping while cleaning up)."""
    where: str
    """The innermost frame of its stack outside the standard library."""
    stack: str
    """Its whole stack, formatted, for the log."""


class HangWatch:
    """Judges the background threads' heartbeats against ``threads.hang_timeout``.

    Args:
        threads: The threads to watch.
        timeout: Seconds of silence (while working) that make a thread hung; None
            disables the check.

    Raises:
        ValueError: ``timeout`` is neither None nor a number > 0 (the message names
            ``threads.hang_timeout``).
    """

    def __init__(self, threads: Sequence[BackgroundThread], timeout: float | None) -> None:
        self.threads = list(threads)
        self.timeout = _checked_timeout(timeout)

    def seconds_to_next_check(self) -> float | None:
        """How long until the quietest working thread would be hung; None: never look.

        With every thread idle or parked it is still one ``timeout``: a thread may start
        working (and hang) right after this call, and the next look must not come later
        than one ``timeout`` after that thread's last beat.
        """
        if self.timeout is None:
            return None
        silences = [thread.control.silent_for() for thread in self.threads]
        quietest = max((s for s in silences if s is not None), default=0.0)
        return max(0.0, self.timeout - quietest)

    def find(self, known: Collection[str] = ()) -> Hang | None:
        """The first thread, not among ``known``, silent for ``timeout`` while working."""
        if self.timeout is None:
            return None
        for thread in self.threads:
            silent = thread.control.silent_for()
            if thread.name not in known and silent is not None and silent >= self.timeout:
                return _describe(thread, silent)
        return None


def _describe(thread: BackgroundThread, silent: float) -> Hang:
    frame = sys._current_frames().get(thread.thread.ident or -1)
    stack = traceback.extract_stack(frame) if frame is not None else None
    return Hang(
        thread=thread,
        silent_seconds=silent,
        doing=str(thread.control.activity.value),
        where=_where(stack) if stack else "(unknown)",
        stack="".join(stack.format()) if stack else "(not available)",
    )


def _where(stack: traceback.StackSummary) -> str:
    """The innermost frame outside the standard library: the code that is waiting.

    The very innermost frame of a blocked thread is a lock inside ``threading``, which
    says nothing about who waits.
    """
    stdlib = sysconfig.get_paths()["stdlib"]
    frames = [frame for frame in stack if not frame.filename.startswith(stdlib)] or list(stack)
    inner = frames[-1]
    return f"{inner.filename}:{inner.lineno} in {inner.name}"


def _checked_timeout(value: float | None) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ValueError(
            f"threads.hang_timeout={value!r}: expected seconds > 0, or null to disable the check"
        )
    return float(value)
