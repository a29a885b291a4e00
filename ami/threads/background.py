"""A background thread's life: start, loop at safe points, end, always clean up.

Subclasses fill in hooks instead of writing a ``run()``: :meth:`on_start` (acquire
resources, on the thread itself), :meth:`on_tick` (one unit of work, or a wait),
:meth:`on_end` (normal shutdown), :meth:`on_exception` and :meth:`on_finally` (always,
e.g. release VRChat inputs). A failure anywhere is logged with its traceback, kept in
:attr:`error` and reported to the main thread at once, which then stops the whole system.

The thread's end is reported in a ``finally`` that cleanup cannot skip: if
:meth:`on_finally` or closing the TensorBoard writer raises (a full disk makes the
writer's last flush fail again), the error is logged, kept (as :attr:`error` if there
was none, else as a note on it) and the thread still marks itself finished and wakes
the main thread. Skipping that once left a dead thread reported alive, a pause never
acknowledged and a run without ``max_uptime`` running until killed.
"""

from __future__ import annotations

import logging
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

from ami.checkpoints.saving import FINAL, Saver
from ami.config_checks import whole_number
from ami.metrics import EventWriter
from ami.state import snapshot
from ami.system.control import ThreadControl

logger = logging.getLogger(__name__)


class BackgroundThread(ABC):
    """One of the two worker threads (inference, training).

    Each thread writes its own TensorBoard event file (:attr:`metrics`), created on the
    thread before :meth:`on_start`, flushed when the thread parks and closed last.

    Args:
        name: Thread name; also selects its log file (``<name>.log``).
        tensorboard_dir: Folder of this thread's event file (the run's ``tensorboard/``,
            shared with the other threads' files: one TensorBoard run).
        torch_threads: Threads each torch operation of this thread may use on the CPU
            (torch keeps this count per thread); None takes the process's count. See
            :meth:`_use_torch_threads` for why the two busy threads should not both use
            every core.
    """

    metrics: EventWriter
    """This thread's TensorBoard writer (from :meth:`on_start` on)."""

    def __init__(
        self, name: str, tensorboard_dir: Path | str, torch_threads: int | None = None
    ) -> None:
        self.name = name
        self.torch_threads = (
            torch.get_num_threads()
            if torch_threads is None
            else whole_number(f"threads.{name}.torch_threads", torch_threads)
        )
        self._tensorboard_dir = Path(tensorboard_dir)
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.error: BaseException | None = None
        """What ended this thread, if a failure did (a cleanup failure counts)."""
        self.cleanup_errors: list[BaseException] = []
        """Failures while cleaning up, in order, whether or not they became :attr:`error`."""
        self.ready = threading.Event()
        """Set once :meth:`on_start` has finished (or failed)."""
        self.scheduling = "not started"
        """The CPU scheduling this thread got (:meth:`configure_scheduling`)."""
        self._control: ThreadControl | None = None
        self._done = False
        self._notify_main: Callable[[], None] = lambda: None
        self._saver: Saver | None = None
        self._saves_answered = 0

    @property
    def control(self) -> ThreadControl:
        """This thread's handle on system control."""
        if self._control is None:
            raise RuntimeError(f"thread {self.name}: bind() was not called before use")
        return self._control

    def bind(self, control: ThreadControl, notify_main: Callable[[], None]) -> None:
        """Attach system control and the main thread's wake-up, before :meth:`start`."""
        self._control = control
        self._notify_main = notify_main

    def use_saver(self, saver: Saver) -> None:
        """Hand this thread's part of each checkpoint to ``saver`` (before :meth:`start`)."""
        self._saver = saver

    def start(self) -> None:
        """Start the thread (called by the main thread)."""
        self.thread.start()

    @property
    def finished(self) -> bool:
        """Whether the thread has left its loop for good."""
        return self.ready.is_set() and not self.control.alive

    def finish(self) -> None:
        """End this thread's loop after the current tick (called on the thread itself).

        The main thread notices and stops the whole system; the exit code stays 0.
        """
        self._done = True

    def configure_scheduling(self) -> str:
        """Set this thread's CPU scheduling (on the thread, first); what it got, in words.

        See :mod:`ami.threads.scheduling`. Raise to refuse the start.
        """
        return "normal"

    def on_start(self) -> None:
        """Acquire resources on this thread, before the system starts."""

    @abstractmethod
    def on_tick(self) -> None:
        """One unit of work, or a wait for the next one."""

    def on_end(self) -> None:
        """The loop ended because of a shutdown request."""

    def on_exception(self, error: BaseException) -> None:
        """The thread failed with ``error`` (already logged)."""

    def on_finally(self) -> None:
        """Always runs last: release what :meth:`on_start` acquired."""

    def status(self) -> Mapping[str, object]:
        """Numbers for the web API's status report (read from the main thread)."""
        return {}

    def checkpoint_state(self) -> Mapping[str, Any]:
        """This thread's part of a checkpoint, taken on the thread at a safe point.

        It may reference live tensors: :meth:`_answer_saves` snapshots it before it
        leaves the thread.
        """
        return {}

    def _answer_saves(self) -> None:
        """Hand a snapshot to the saver if a save was requested since the last one."""
        requested = self.control.save_requests
        if self._saver is not None and requested > self._saves_answered:
            self.control.beat()  # copying a large state takes a while: work, not a hang
            self._saver.contribute(self.name, requested, snapshot(self.checkpoint_state()))
            self._saves_answered = requested
            self.control.beat()

    def _use_torch_threads(self) -> None:
        """Give this thread's torch operations their own count of CPU threads.

        An operation split over every core stalls as a whole whenever one of its
        pieces waits for a core, and with two busy threads one always does: on two
        cores, while the training thread copied a sync, a 100M-parameter forward pass
        on two threads sometimes took twice its 16 ms (stall p99 1.9 ms), on one
        thread it did not (p99 0.3-0.4 ms, ``benchmarks/sync.py``), and it was no
        slower without the copy. The count is per thread in torch (an OpenMP
        setting), but a thread's first operation resets it to the last count set
        anywhere, hence the ``get`` before the ``set``.
        """
        torch.get_num_threads()
        torch.set_num_threads(self.torch_threads)

    def _run(self) -> None:
        control = self.control
        try:
            self._live(control)
        except BaseException as error:
            self._fail(control, error)
        finally:
            try:
                self._clean_up()
            finally:
                control.mark_finished()
                self.ready.set()
                self._notify_main()

    def _live(self, control: ThreadControl) -> None:
        # First, before any torch operation: the OpenMP workers this thread's first
        # parallel operation creates inherit its scheduling.
        self.scheduling = self.configure_scheduling()
        self._use_torch_threads()
        self.metrics = EventWriter(self._tensorboard_dir, suffix=self.name)
        control.on_pause(self.metrics.flush)
        control.on_save_while_parked(self._answer_saves)
        self.on_start()
        self.ready.set()
        self._notify_main()
        if control.wait_for_start():
            while not self._done and control.manage_loop():
                self._answer_saves()
                self.on_tick()
        control.mark_stopping()
        self._notify_main()  # the main thread stops the others now, not after cleanup
        self.on_end()
        if self._saver is not None:  # the last state, for the checkpoint at the end
            self._saver.contribute(self.name, FINAL, snapshot(self.checkpoint_state()))

    def _fail(self, control: ThreadControl, error: BaseException) -> None:
        self.error = error
        control.mark_stopping()
        logger.exception("thread %s failed: %s; stopping the system", self.name, _describe(error))
        self._notify_main()
        try:
            self.on_exception(error)
        except BaseException as hook_error:
            self._cleanup_failed("in on_exception", hook_error)

    def _clean_up(self) -> None:
        """Run every cleanup step, whatever the ones before it did."""
        try:
            self.on_finally()
        except BaseException as error:
            self._cleanup_failed("in on_finally", error)
        if hasattr(self, "metrics"):
            try:
                self.metrics.close()
            except BaseException as error:
                self._cleanup_failed("closing its TensorBoard writer", error)

    def _cleanup_failed(self, where: str, error: BaseException) -> None:
        """Log a cleanup failure and keep it: never swallowed, never the end of cleanup."""
        self.cleanup_errors.append(error)
        logger.error(
            "thread %s failed while cleaning up (%s): %s",
            self.name,
            where,
            _describe(error),
            exc_info=error,
        )
        first = self.error
        if first is None:
            self.error = error
            return
        if error is first:
            return
        first.add_note(f"then, while cleaning up ({where}): {_describe(error)}")
        if error.__context__ is None:
            error.__context__ = first  # its traceback then shows what it followed


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"
