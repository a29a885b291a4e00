"""System control: the main thread decides; background threads obey at safe points.

The main thread writes :class:`SystemControl` (shutdown, pause, resume, start, save
state). Each
background thread gets a :class:`ThreadControl`: a read-only handle on the system's
state plus the thread's own acknowledgement flag. A background thread calls
:meth:`ThreadControl.manage_loop` at its safe points (between inference steps, between
optimizer steps); while the system is paused that call parks the thread and reports it,
so the main thread can wait until every thread really sits still.

Waiting is event-driven: idle threads block in :meth:`ThreadControl.wait`, which any
change of the system's state (or a data arrival) wakes at once. Nothing sleep-polls.

Example (the shape of every background loop):
    >>> def loop(control: ThreadControl) -> None:
    ...     while control.manage_loop():
    ...         ...  # one unit of work; or control.wait(timeout) when there is none
"""

from __future__ import annotations

import enum
import threading
from collections.abc import Callable

from typing_extensions import override

from ami.sharing import Owned, ReadOnlyHandle, writes


class SystemState(enum.Enum):
    """What the system is doing, as reported by the web API."""

    ACTIVE = "active"
    PAUSED = "paused"
    STOPPED = "stopped"


class SystemControl(Owned):
    """Shutdown flag, pause/resume and start signal; written by the main thread only."""

    def __init__(self) -> None:
        super().__init__("system_control")
        self._started = threading.Event()
        self._shutdown = threading.Event()
        self._resumed = threading.Event()
        self._resumed.set()
        self._pauses = 0
        """Pauses requested so far: a thread acknowledges a pause by its number."""
        self._acknowledged = threading.Condition()
        self._save_requests = 0
        self._handles: list[ThreadControl] = []

    @property
    def state(self) -> SystemState:
        """The requested state (threads may still be on their way to it)."""
        if self._shutdown.is_set():
            return SystemState.STOPPED
        return SystemState.ACTIVE if self._resumed.is_set() else SystemState.PAUSED

    @writes
    def handle_for(self, name: str) -> ThreadControl:
        """Create the control handle of background thread ``name`` (before it starts)."""
        handle = ThreadControl(self, name)
        self._handles.append(handle)
        return handle

    @writes
    def start(self) -> None:
        """Let the background threads leave their start barrier."""
        self._started.set()
        self._wake_all()

    @writes
    def pause(self) -> None:
        """Ask every background thread to park at its next safe point."""
        if not self._shutdown.is_set() and self._resumed.is_set():
            with self._acknowledged:
                self._pauses += 1
            self._resumed.clear()
            self._wake_all()

    @writes
    def resume(self) -> None:
        """Release parked threads."""
        self._resumed.set()
        self._wake_all()

    @writes
    def request_save(self) -> int:
        """Ask the training thread to save a checkpoint at its next safe point.

        Returns:
            The request's number; the training thread reports the last one it served.
        """
        self._save_requests += 1
        self._wake_all()
        return self._save_requests

    @writes
    def shutdown(self) -> None:
        """Ask every thread to stop; parked and idle threads wake up to do so."""
        self._shutdown.set()
        self._started.set()
        self._resumed.set()
        self._wake_all()

    def wait_until_paused(self, timeout: float) -> bool:
        """Wait until every live background thread has parked for this pause.

        Each thread acknowledges the pause by its number, so an acknowledgement left
        over from an earlier pause never counts. Threads that have finished count as
        parked: they cannot act any more.

        Returns:
            True once all are parked; False on timeout or if the system is not paused.
        """
        with self._acknowledged:
            pause = self._pauses

            def all_parked() -> bool:
                return all(h._parked_for == pause or not h.alive for h in self._handles)

            self._acknowledged.wait_for(
                lambda: self.state is not SystemState.PAUSED or all_parked(), timeout
            )
            return all_parked() and self.state is SystemState.PAUSED

    def _wake_all(self) -> None:
        for handle in self._handles:
            handle.wake()


class ThreadControl(ReadOnlyHandle):
    """A background thread's view of system control, and its own pause acknowledgement.

    The system's flags are read-only here (``pause()`` and the like raise
    :class:`~ami.sharing.ReadOnlyError`); the only things this handle writes are its
    own thread's acknowledgement and wake-up signal.
    """

    def __init__(self, system: SystemControl, name: str) -> None:
        self._system = system
        self.name = name
        self._wake = threading.Event()
        self._parked_for: int | None = None
        """Number of the pause this thread is parked for; None while it runs."""
        self._alive = True
        self._pause_listeners: list[Callable[[], None]] = []
        self._resume_listeners: list[Callable[[], None]] = []

    @override
    def _read_only_target(self) -> SystemControl:
        return self._system

    def is_active(self) -> bool:
        """False once shutdown was requested."""
        return not self._system._shutdown.is_set()

    def is_paused(self) -> bool:
        """True while the system is paused (and not shutting down)."""
        return self._system.state is SystemState.PAUSED

    @property
    def save_requests(self) -> int:
        """Save-state requests made so far (compare with the ones already served)."""
        return self._system._save_requests

    @property
    def parked(self) -> bool:
        """Whether this thread sits at a safe point during a pause."""
        return self._parked_for is not None

    @property
    def alive(self) -> bool:
        """False once the thread has left its loop for good."""
        return self._alive

    def mark_finished(self) -> None:
        """Record that the thread left its loop (called by the thread itself)."""
        with self._system._acknowledged:
            self._alive = False
            self._system._acknowledged.notify_all()

    def on_pause(self, listener: Callable[[], None]) -> None:
        """Run ``listener`` on this thread each time it parks (e.g. release OSC inputs)."""
        self._pause_listeners.append(listener)

    def on_resume(self, listener: Callable[[], None]) -> None:
        """Run ``listener`` on this thread each time it leaves a pause."""
        self._resume_listeners.append(listener)

    def wait_for_start(self) -> bool:
        """Block until the main thread starts the system; False if it shut down instead."""
        self._system._started.wait()
        return self.is_active()

    def manage_loop(self) -> bool:
        """Call at each safe point: parks while paused; False once shutdown was requested."""
        if not self._system._resumed.is_set():
            self._park()
        return self.is_active()

    def wait(self, timeout: float | None = None) -> bool:
        """Sleep until woken (new data, pause, resume, shutdown) or ``timeout`` passes.

        Returns:
            True if something woke the thread, False on timeout.
        """
        woken = self._wake.wait(timeout)
        self._wake.clear()
        return woken

    def wake(self) -> None:
        """Wake this thread from :meth:`wait`; any thread may call it."""
        self._wake.set()

    def _park(self) -> None:
        for listener in self._pause_listeners:
            listener()
        system = self._system
        with system._acknowledged:
            self._parked_for = system._pauses
            system._acknowledged.notify_all()
        try:
            system._resumed.wait()
        finally:
            with system._acknowledged:
                self._parked_for = None
        if self.is_active():
            for listener in self._resume_listeners:
                listener()
