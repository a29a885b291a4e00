"""System control: the main thread decides; background threads obey at safe points.

The main thread writes :class:`SystemControl` (shutdown, pause, resume, start, save
state). Each background thread gets a :class:`ThreadControl`: a read-only handle on the
system's state plus the thread's own acknowledgement flag and heartbeat. A background
thread calls :meth:`ThreadControl.manage_loop` at its safe points (between inference
steps, between optimizer steps); while the system is paused that call parks the thread
and reports it, so the main thread can wait until every thread really sits still.

Every safe point is also a heartbeat: the handle records when the thread last passed
one and what it is doing (:class:`Activity`). A thread blocked in an idle wait or parked
for a pause is waiting for someone else, so it is never taken for hung; a thread that
is running and has not beaten for a while is (see :meth:`ThreadControl.silent_for`).

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
import time
from collections.abc import Callable

from typing_extensions import override

from ami.sharing import Owned, ReadOnlyHandle, writes


class SystemState(enum.Enum):
    """What the system is doing, as reported by the web API.

    :attr:`SystemControl.state` only names a state once it is true: ``paused`` once
    every live thread has parked (``pausing`` until then), ``stopped`` once every thread
    has finished (``stopping`` from the shutdown request, or from the moment any thread
    leaves its loop, since the main thread then stops the rest).
    :attr:`SystemControl.requested` uses only ``active``, ``paused`` and ``stopped``.
    """

    STARTING = "starting"
    ACTIVE = "active"
    PAUSING = "pausing"
    PAUSED = "paused"
    RESUMING = "resuming"
    """Resumed, but a thread has not left its park yet."""
    STOPPING = "stopping"
    STOPPED = "stopped"


class Activity(enum.Enum):
    """What a background thread last reported doing, at its last heartbeat."""

    STARTING = "starting"
    """Acquiring resources or waiting for the start signal (``threads.start_timeout``)."""
    RUNNING = "running"
    """Working between safe points: expected to beat again soon."""
    IDLE = "idle"
    """Blocked in :meth:`ThreadControl.wait` until data or a state change arrives."""
    PARKED = "parked"
    """Sitting at a safe point during a pause."""
    STOPPING = "stopping"
    """Left its loop (shutdown, failure or its own end); cleaning up."""
    FINISHED = "finished"
    """Gone for good."""


_BEATING = (Activity.RUNNING, Activity.STOPPING)
"""Activities in which a thread owes heartbeats; the others wait on someone else."""


class SystemControl(Owned):
    """Shutdown flag, pause/resume and start signal; written by the main thread only.

    Args:
        clock: Monotonic seconds for heartbeats (a test may pass its own clock).
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__("system_control")
        self.clock = clock
        self._started = threading.Event()
        self._shutdown = threading.Event()
        self._resumed = threading.Event()
        self._resumed.set()
        self._pauses = 0
        """Pauses requested so far: a thread acknowledges a pause by its number."""
        self._acknowledged = threading.Condition()
        self._save_requests = 0
        self._handles: list[ThreadControl] = []
        self.notify: Callable[[], None] = lambda: None
        """Wakes the main thread when a thread parks (a pending pause reply is then due);
        the main thread sets it, before the threads start."""

    @property
    def requested(self) -> SystemState:
        """The state asked for: active, paused or stopped (threads may be on their way)."""
        if self._shutdown.is_set():
            return SystemState.STOPPED
        return SystemState.ACTIVE if self._resumed.is_set() else SystemState.PAUSED

    @property
    def state(self) -> SystemState:
        """The state the threads are really in; never one they have not reached yet."""
        with self._acknowledged:
            activities = [handle.activity for handle in self._handles]
            ending = (Activity.STOPPING, Activity.FINISHED)
            if self._shutdown.is_set() or any(a in ending for a in activities):
                done = all(a is Activity.FINISHED for a in activities)
                return SystemState.STOPPED if done else SystemState.STOPPING
            if not self._started.is_set():
                return SystemState.STARTING
            if self._resumed.is_set():
                still = any(h.alive and h._parked_for is not None for h in self._handles)
                return SystemState.RESUMING if still else SystemState.ACTIVE
            return SystemState.PAUSED if self._all_parked() else SystemState.PAUSING

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

    @property
    def save_requests(self) -> int:
        """Save requests made so far (each numbered by its count)."""
        return self._save_requests

    @writes
    def request_save(self) -> int:
        """Ask every background thread for a snapshot of its state, at its next safe point.

        A parked thread answers at once. The main thread writes the checkpoint once
        all have answered (:mod:`ami.checkpoints.saving`).

        Returns:
            The request's number; ``/api/status`` reports on it.
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
            self._acknowledged.wait_for(
                lambda: self.requested is not SystemState.PAUSED or self._all_parked(), timeout
            )
            return self._all_parked() and self.requested is SystemState.PAUSED

    def _all_parked(self) -> bool:
        """Every live thread parked for the latest pause (call under ``_acknowledged``)."""
        pause = self._pauses
        return all(h._parked_for == pause or not h.alive for h in self._handles)

    def _wake_all(self) -> None:
        for handle in self._handles:
            handle.wake()


class ThreadControl(ReadOnlyHandle):
    """A background thread's view of system control, its pause acknowledgement and pulse.

    The system's flags are read-only here (``pause()`` and the like raise
    :class:`~ami.sharing.ReadOnlyError`); the only things this handle writes are its
    own thread's acknowledgement, heartbeat and wake-up signal.
    """

    def __init__(self, system: SystemControl, name: str) -> None:
        self._system = system
        self.name = name
        self._wake = threading.Event()
        self._parked_for: int | None = None
        """Number of the pause this thread is parked for; None while it runs."""
        self._alive = True
        self._pulse = (Activity.STARTING, system.clock())
        """(activity, time of the last heartbeat): one tuple, so a reader on another
        thread never pairs a new activity with an old beat."""
        self._pause_listeners: list[Callable[[], None]] = []
        self._resume_listeners: list[Callable[[], None]] = []
        self._save_listeners: list[Callable[[], None]] = []

    @override
    def _read_only_target(self) -> SystemControl:
        return self._system

    def is_active(self) -> bool:
        """False once shutdown was requested."""
        return not self._system._shutdown.is_set()

    def is_paused(self) -> bool:
        """True while a pause is requested (and no shutdown)."""
        return self._system.requested is SystemState.PAUSED

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

    @property
    def activity(self) -> Activity:
        """What the thread reported doing at its last heartbeat."""
        return self._pulse[0]

    @property
    def last_beat(self) -> float:
        """Time of the last heartbeat, on the system's clock."""
        return self._pulse[1]

    def silent_for(self, now: float | None = None) -> float | None:
        """Seconds without a heartbeat while the thread owes one, else None.

        None while it starts, waits idle, sits parked or has finished: then it waits
        for the main thread or for data, and silence says nothing about its health.
        """
        activity, beat = self._pulse
        if activity not in _BEATING:
            return None
        return (self._system.clock() if now is None else now) - beat

    def beat(self) -> None:
        """Report that the thread is working and healthy (called by the thread itself).

        Safe points beat by themselves; call this inside a long stretch of work that
        has none, so the main thread does not take the thread for hung.
        """
        self._report(self.activity)

    def mark_stopping(self) -> None:
        """Record that the thread left its loop and is cleaning up (thread itself)."""
        self._pulse = (Activity.STOPPING, self._system.clock())

    def mark_finished(self) -> None:
        """Record that the thread is gone for good (called by the thread itself, last)."""
        with self._system._acknowledged:
            self._alive = False
            self._pulse = (Activity.FINISHED, self._system.clock())
            self._system._acknowledged.notify_all()

    def _report(self, activity: Activity) -> None:
        """A heartbeat doing ``activity``; once the thread left its loop it stays stopping."""
        current = self._pulse[0]
        if current is Activity.FINISHED:
            return
        if current is Activity.STOPPING:
            activity = Activity.STOPPING
        self._pulse = (activity, self._system.clock())

    def on_pause(self, listener: Callable[[], None]) -> None:
        """Run ``listener`` on this thread each time it parks (e.g. release OSC inputs)."""
        self._pause_listeners.append(listener)

    def on_resume(self, listener: Callable[[], None]) -> None:
        """Run ``listener`` on this thread each time it leaves a pause."""
        self._resume_listeners.append(listener)

    def on_save_while_parked(self, listener: Callable[[], None]) -> None:
        """Run ``listener`` on this thread when a save is requested while it is parked.

        A paused system is quiescent: its state can be saved at once, without waiting
        for the resume.
        """
        self._save_listeners.append(listener)

    def wait_for_start(self) -> bool:
        """Block until the main thread starts the system; False if it shut down instead."""
        self._system._started.wait()
        self._report(Activity.RUNNING)
        return self.is_active()

    def manage_loop(self) -> bool:
        """Call at each safe point: a heartbeat; parks while paused; False after shutdown."""
        self._report(Activity.RUNNING)
        if not self._system._resumed.is_set():
            self._park()
        return self.is_active()

    def wait(self, timeout: float | None = None) -> bool:
        """Sleep until woken (new data, pause, resume, shutdown) or ``timeout`` passes.

        The thread counts as idle meanwhile (alive, owing no heartbeat).

        Returns:
            True if something woke the thread, False on timeout.
        """
        self._report(Activity.IDLE)
        try:
            woken = self._wake.wait(timeout)
            self._wake.clear()
        finally:
            self._report(Activity.RUNNING)
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
            self._report(Activity.PARKED)
            system._acknowledged.notify_all()
        system.notify()
        pause = self._parked_for
        try:
            # Until a resume (or a shutdown), even one already followed by the next
            # pause: this thread then parks again, for that pause.
            while not system._resumed.is_set() and system._pauses == pause:
                self._wake.wait()  # a resume, a shutdown or a save request
                self._wake.clear()
                if not system._resumed.is_set() and system._pauses == pause:
                    for listener in self._save_listeners:
                        listener()
        finally:
            with system._acknowledged:
                self._parked_for = None
                self._report(Activity.RUNNING)
        if self.is_active():
            for listener in self._resume_listeners:
                listener()
