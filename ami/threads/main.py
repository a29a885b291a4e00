"""The main thread: starts the background threads, serves the control API, stops everything.

Order of a run:
1. open the control API (a taken port fails before anything starts);
2. start the training and inference threads; each acquires its resources in
   ``on_start`` and reports ready (the training thread builds its optimizers here, so
   their one-off import stall happens before the agent moves);
3. freeze the garbage collector's view of everything built so far and release the
   threads together;
4. serve requests until a shutdown request, ``max_uptime``, Ctrl+C / SIGTERM, a
   thread's end or failure, or a hung thread;
5. stop: raise the shutdown flag and keep serving the API (it reports ``stopping``)
   until every thread has finished or ``threads.stop_timeout`` has passed, then join
   inference (it releases the world's inputs) and training, close the API and log a
   summary. The exit code is 0 unless a thread failed or hung.

Liveness: a thread that fails or leaves its loop wakes this thread at once (its
``finally`` cannot be skipped, see :mod:`ami.threads.background`). A thread that stays
silent, running but without a heartbeat (:meth:`ThreadControl.manage_loop` between
steps) for ``threads.hang_timeout`` seconds, is reported ``hung`` and stops the run with
exit code 1; idle and parked threads wait on others and are never hung. The select
loop sleeps until the nearest such deadline, so checking costs one wake-up per
``hang_timeout`` at most, not a poll.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import selectors
import signal
import sys
import threading
import time
import types
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

from ami.checkpoints.saving import Saver
from ami.config_checks import positive_number
from ami.system.control import Activity, SystemControl, SystemState
from ami.threads.background import BackgroundThread
from ami.threads.garbage import GcMode, check_gc_mode
from ami.threads.liveness import Hang, HangWatch
from ami.threads.run_report import RunReport
from ami.threads.waker import Waker
from ami.web.api import ControlAPI

logger = logging.getLogger(__name__)


STOP_CHECK_SECONDS = 0.5
"""How often the loop asks ``stop_when`` (a file's existence: microseconds)."""


class ExperienceCounts(Protocol):
    """The hand-off's counters (a :class:`~ami.data.StepCollector`), read for the status.

    Drops and a growing queue mean training does not keep up; the status and the final
    summary show them so that nobody has to dig through charts to notice.
    """

    @property
    def pending(self) -> int:
        """Steps waiting for the training thread."""

    @property
    def appended_total(self) -> int:
        """Steps appended so far, dropped ones included."""

    @property
    def dropped_total(self) -> int:
        """Steps lost because nobody took them in time."""


class MainThread:
    """Runs the system from the calling (main) thread.

    Args:
        system: System control; this thread writes it.
        threads: Background threads, in stopping order (inference first, so the world
            is left alone before training stops).
        api: The control API, or None to run without one.
        max_uptime: Seconds after which the run ends cleanly; None runs until stopped.
        start_timeout: Seconds the threads may take to get ready.
        stop_timeout: Seconds the threads may take to stop, from the shutdown request.
        freeze_gc: Move everything built before the start out of the collector's sight,
            so full collections stay short while large models are loaded.
        gc: ``inference`` turns automatic garbage collection off from the start to
            the end of the run: the inference thread collects in its slack instead
            (:mod:`ami.threads.garbage`; give it the same mode). ``auto`` leaves it on.
        gil_switch_interval: Seconds a thread running Python code may keep the GIL
            while another waits for it (``sys.setswitchinterval``) during the run;
            Python's 5 ms default lets the training thread's Python work delay an
            inference step by that much. None leaves it as it is.
        hang_timeout: Seconds a running thread may go without a heartbeat before it is
            reported hung and the run stops with exit code 1; None disables the check.
            Raise it if one optimizer step (or a checkpoint save) can take longer.
        collector: The experience hand-off, whose counts the status reports.
        saver: Writes checkpoints from the threads' snapshots (see
            :mod:`ami.checkpoints.saving`): on ``POST /api/save``, every
            ``checkpoint.every`` seconds and when the run ends. None saves nothing.
        report: The progress line, resource charts and end-of-run numbers (see
            :mod:`ami.threads.run_report`); None reports nothing.
        api_record: Where to write the API's address once it listens
            (``<run dir>/control_api.json``), so that tools such as ``ami-console``
            find a run's API without being told its port.
        stop_when: Asked every :data:`STOP_CHECK_SECONDS` by this loop (no thread of
            its own): a reason to stop from outside the process, e.g. a sweep's stop
            file (:mod:`ami.sweeps.stop`), or None. A reason stops the run as Ctrl+C
            does (outcome ``interrupted``).
    """

    def __init__(
        self,
        system: SystemControl,
        threads: Sequence[BackgroundThread],
        api: ControlAPI | None = None,
        max_uptime: float | None = None,
        start_timeout: float = 300.0,
        stop_timeout: float = 30.0,
        freeze_gc: bool = True,
        gc: GcMode = "auto",
        gil_switch_interval: float | None = 0.001,
        hang_timeout: float | None = 30.0,
        collector: ExperienceCounts | None = None,
        saver: Saver | None = None,
        report: RunReport | None = None,
        api_record: Path | None = None,
        stop_when: Callable[[], str | None] | None = None,
    ) -> None:
        self.check_max_uptime(max_uptime)
        self.system = system
        self.threads = list(threads)
        self.api = api
        self.max_uptime = max_uptime
        self.start_timeout = positive_number("threads.start_timeout", start_timeout)
        self.stop_timeout = positive_number("threads.stop_timeout", stop_timeout)
        self.freeze_gc = freeze_gc
        self.gc = check_gc_mode("threads.gc", gc)
        self._gc_was_enabled = True
        if gil_switch_interval is not None:
            positive_number("threads.gil_switch_interval", gil_switch_interval)
        self.gil_switch_interval = gil_switch_interval
        self.hang_watch = HangWatch(self.threads, hang_timeout)
        self.collector = collector
        self.saver = saver
        self.report = report
        self.api_record = api_record
        self.outcome: str | None = None
        """``completed``, ``interrupted`` (Ctrl+C, SIGTERM) or ``failed``, once run() returned."""
        self.reason: str | None = None
        """Why it failed, in one line (None unless failed)."""
        self.api_url: str | None = None
        """Where the control API listened (it stays known after the API closed)."""
        self.stop_when = stop_when
        self._next_stop_check = 0.0
        self._stopped_from_outside = False
        self.hung: list[str] = []
        """Threads reported hung, or abandoned because they did not stop in time."""
        self._hung_at: dict[str, str] = {}
        """Where each hung thread was stuck (its innermost frame), for the status."""
        self._waker = Waker()
        self._selector = selectors.DefaultSelector()
        """The one select loop of the run: the waker, and the API's sockets from its opening."""
        self._started_at: float | None = None
        self._stop_deadline: float | None = None
        """Set when the stop begins: the threads must have finished by then."""
        for thread in self.threads:
            thread.bind(system.handle_for(thread.name), self._waker.notify)
            if saver is not None:
                thread.use_saver(saver)
        system.notify = self._waker.notify  # a thread parked: a pause reply may be due
        if saver is not None:
            saver.notify = self._waker.notify  # a snapshot handed over: start writing

    @staticmethod
    def check_max_uptime(max_uptime: float | None) -> None:
        """Raise ValueError unless ``max_uptime`` is seconds > 0 or None."""
        if max_uptime is not None:
            positive_number("max_uptime", max_uptime)

    def run(self) -> int:
        """Run until stopped; the process exit code (0 clean, 1 failure)."""
        threading.current_thread().name = "main"
        switch_interval = sys.getswitchinterval()
        if self.gil_switch_interval is not None:
            sys.setswitchinterval(self.gil_switch_interval)
        try:
            interrupted = self._run_threads(switch_interval)
        except Exception as error:  # e.g. the API's port, a start timeout: recorded, raised
            self.outcome, self.reason = "failed", f"{type(error).__name__}: {error}"
            self._finish_report()
            raise
        reasons = [
            f"{thread.name} failed ({type(thread.error).__name__}: {thread.error})"
            for thread in self.threads
            if thread.error is not None
        ] + [f"{name} hung" for name in self.hung]
        if reasons:
            self.outcome, self.reason = "failed", "thread " + "; thread ".join(reasons)
            logger.error("run failed: %s", self.reason)
        else:
            stopped = interrupted or self._stopped_from_outside
            self.outcome = "interrupted" if stopped else "completed"
        self._finish_report()
        return 1 if reasons else 0

    def _run_threads(self, switch_interval: float) -> bool:
        """Start, serve and stop; True if Ctrl+C or SIGTERM stopped the run."""
        self._selector.register(self._waker, selectors.EVENT_READ)
        interrupted = False
        try:
            with _signals_interrupt(self._waker):
                try:
                    if self.api is not None:
                        self.api.open(self.system, self.status)
                        self.api.register(self._selector)  # its sockets never block the loop
                        self._record_api(self.api)
                    if self._start():
                        self._serve()
                except KeyboardInterrupt:
                    interrupted = True
                    logger.info("interrupted; stopping")
                finally:
                    self._stop()
        finally:
            self._selector.close()
            self._waker.close()
            sys.setswitchinterval(switch_interval)
        return interrupted

    def _finish_report(self) -> None:
        if self.report is not None and self.outcome is not None:
            self.report.finish(time.monotonic(), self.status(), self.outcome)

    def _record_api(self, api: ControlAPI) -> None:
        """Write where the API listens, for tools (a temporary file renamed into place)."""
        self.api_url = api.url
        if self.api_record is None:
            return
        port = int(api.url.rsplit(":", 1)[1])
        record = {
            "url": api.url,
            "host": api.host,
            "port": port,
            "pid": os.getpid(),
            "token_required": api.needs_token,
            "run_dir": str(self.api_record.parent.resolve()),
        }
        partial = self.api_record.with_name(self.api_record.name + ".partial")
        partial.write_text(json.dumps(record, indent=2) + "\n")
        os.replace(partial, self.api_record)

    def status(self) -> dict[str, Any]:
        """The system's state and each thread's progress, for the web API.

        Every field is a fact at the time of the call: ``status`` is ``paused`` only
        once every live thread has parked (``pausing`` before), ``stopping`` from the
        moment a stop is due (a request, a thread's end, failure or hang).
        """
        uptime = time.monotonic() - self._started_at if self._started_at is not None else 0.0
        report: dict[str, Any] = {
            "status": self.system.state.value,
            "uptime_seconds": round(uptime, 3),
            "process_threads": sorted(thread.name for thread in threading.enumerate()),
            "threads": {thread.name: self._thread_status(thread) for thread in self.threads},
        }
        if self.collector is not None:
            report["collector"] = self._collector_counts(self.collector)
        if self.saver is not None:
            report["checkpoint"] = self.saver.status()
        return report

    def _thread_status(self, thread: BackgroundThread) -> dict[str, Any]:
        control = thread.control
        entry: dict[str, Any] = {
            "alive": control.alive,
            "state": self._thread_state(thread),
            "parked": control.parked,
            "seconds_since_heartbeat": round(self.system.clock() - control.last_beat, 3),
            "error": repr(thread.error) if thread.error is not None else None,
        }
        if thread.name in self._hung_at:
            entry["hung_at"] = self._hung_at[thread.name]
        entry.update(thread.status())
        return entry

    def _thread_state(self, thread: BackgroundThread) -> str:
        """One of: starting, running, idle, parked, stopping, hung, finished, failed.

        ``hung`` is this thread's verdict and sticks until the thread finishes; the
        others are what the thread last reported of itself.
        """
        activity = thread.control.activity
        if activity is Activity.FINISHED:
            return "failed" if thread.error is not None else "finished"
        if thread.name in self.hung:
            return "hung"
        return str(activity.value)

    @staticmethod
    def _collector_counts(collector: ExperienceCounts) -> dict[str, int]:
        return {
            "appended": collector.appended_total,
            "pending": collector.pending,
            "dropped": collector.dropped_total,
        }

    def _start(self) -> bool:
        for thread in self.threads:
            thread.start()
        deadline = time.monotonic() + self.start_timeout
        # The API answers meanwhile (status: starting); a shutdown request ends the wait.
        while not all(thread.ready.is_set() for thread in self.threads):
            if any(_has_ended(thread) for thread in self.threads):
                break  # one failed during set-up: stop the others now
            if self.system.requested is SystemState.STOPPED:
                logger.info("shutdown requested before the start; stopping")
                return False
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                waiting = [t.name for t in self.threads if not t.ready.is_set()]
                raise TimeoutError(
                    f"thread(s) {waiting} not ready after {self.start_timeout} s "
                    "(threads.start_timeout)"
                )
            self._turn(remaining)
        if any(_has_ended(thread) for thread in self.threads):
            return False
        if self.freeze_gc:
            gc.collect()
            gc.freeze()
        if self.gc == "inference":
            self._gc_was_enabled = gc.isenabled()
            gc.disable()  # the inference thread collects in its slack from now on
        self._started_at = time.monotonic()
        if self.saver is not None:
            self.saver.start(self._started_at)
        if self.report is not None:
            self.report.start(self._started_at)
        self.system.start()
        if self.api is not None:
            line = f"Control API: {self.api.url}"
            if self.api.needs_token:
                line += " (send 'Authorization: Bearer <web_api.token>' with every request)"
            logger.info(line)  # the console shows it through the log's console handler
        return True

    def _serve(self) -> None:
        # Runs on through the stop, so the API reports it (stopping, a hung thread).
        while not self._run_over():
            self._turn(self._select_timeout())
            self._save_turn()
            self._report_turn()

    def _turn(self, timeout: float | None) -> None:
        """One wait in ``select()``: wake-ups, and whatever the API's sockets have."""
        if self.api is not None:
            timeout = self.api.timeout(timeout)  # its nearest deadline, if sooner
        for key, events in self._selector.select(timeout):
            if key.fileobj is self._waker:
                self._waker.drain()
            elif self.api is not None:
                self.api.on_ready(key, events)
        if self.api is not None:
            self.api.poll()

    def _save_turn(self) -> None:
        """Request a periodic save when due; write the next chunk of a checkpoint."""
        saver = self.saver
        if saver is None:
            return
        now = time.monotonic()
        if self._stop_deadline is None and saver.periodic_due(now):
            saver.periodic_requested(self.system.request_save(), now)
        alive = {thread.name: thread.control.alive for thread in self.threads}
        saver.poll(self.system.save_requests, lambda name: alive.get(name, False))

    def _report_turn(self) -> None:
        """A progress line or a resource sample, when one is due (not while stopping)."""
        report = self.report
        if report is None or self._stop_deadline is not None:
            return
        now = time.monotonic()
        if report.seconds_to_next(now) == 0.0:
            report.tick(now, self.status())

    def _stop(self) -> None:
        with _signals_ignored():
            self._stop_in_order()

    def _stop_in_order(self) -> None:
        self._begin_stop()
        assert self._stop_deadline is not None
        for thread in self.threads:
            if not thread.thread.is_alive() and thread.thread.ident is None:
                continue
            thread.thread.join(max(0.0, self._stop_deadline - time.monotonic()))
            if thread.thread.is_alive():
                logger.error(
                    "thread %s did not stop within %s s of the shutdown request "
                    "(threads.stop_timeout); abandoning it",
                    thread.name,
                    self.stop_timeout,
                )
                if thread.name not in self.hung:
                    self.hung.append(thread.name)
        if self.saver is not None:
            self.saver.finish()  # the final checkpoint, from each thread's last state
        if self.api is not None:
            self.api.close()
        if self.freeze_gc:
            gc.unfreeze()
        if self.gc == "inference" and self._gc_was_enabled:
            gc.enable()
        summary: dict[str, Mapping[str, Any]] = {
            thread.name: {"state": self._thread_state(thread), **thread.status()}
            for thread in self.threads
        }
        if self.collector is not None:
            summary["collector"] = self._collector_counts(self.collector)
        logger.info("stopped: %s", _compact(summary))

    def _run_over(self) -> bool:
        """Start the stop when something calls for it; True once the threads are done.

        Called before every ``select()``: a thread's end or failure woke the loop, a
        hang or ``max_uptime`` is found because the timeout ends at its deadline.
        """
        if self._stop_deadline is None:
            self._check_for_stop()
        if self._stop_deadline is None:
            return False
        started = [thread for thread in self.threads if thread.thread.ident is not None]
        finished = all(not thread.control.alive for thread in started)
        return finished or time.monotonic() >= self._stop_deadline

    def _check_for_stop(self) -> None:
        if self.system.requested is SystemState.STOPPED:
            logger.info("shutdown requested; stopping")
            self._begin_stop()
            return
        ended = next((thread for thread in self.threads if _has_ended(thread)), None)
        if ended is not None:
            if ended.error is None:  # a failed thread has logged its error and traceback
                logger.info("thread %s ended; stopping", ended.name)
            self._begin_stop()
            return
        hang = self.hang_watch.find(known=self.hung)
        if hang is not None:
            self._report_hung(hang)
            self._begin_stop()
            return
        if self._uptime_left() == 0.0:
            logger.info("max_uptime of %s s reached; stopping", self.max_uptime)
            self._begin_stop()
            return
        reason = self._outside_reason()
        if reason is not None:
            logger.info("asked to stop (%s); stopping", reason)
            self._stopped_from_outside = True
            self._begin_stop()

    def _outside_reason(self) -> str | None:
        """``stop_when``'s answer, asked at most every :data:`STOP_CHECK_SECONDS`."""
        now = time.monotonic()
        if self.stop_when is None or now < self._next_stop_check:
            return None
        self._next_stop_check = now + STOP_CHECK_SECONDS
        return self.stop_when()

    def _begin_stop(self) -> None:
        if self._stop_deadline is None:
            self._stop_deadline = time.monotonic() + self.stop_timeout
        self.system.shutdown()

    def _select_timeout(self) -> float | None:
        """Seconds until the loop must look again: the nearest stop, uptime or hang deadline.

        With no deadline at all (no ``max_uptime``, no hang check) it sleeps until woken.
        """
        if self._stop_deadline is not None:
            return max(0.0, self._stop_deadline - time.monotonic())
        waits = [self._uptime_left(), self.hang_watch.seconds_to_next_check()]
        if self.saver is not None:
            waits.append(self.saver.seconds_to_next(time.monotonic()))
        if self.report is not None:
            waits.append(self.report.seconds_to_next(time.monotonic()))
        if self.stop_when is not None:
            waits.append(max(0.0, self._next_stop_check - time.monotonic()))
        known = [wait for wait in waits if wait is not None]
        return min(known) if known else None

    def _uptime_left(self) -> float | None:
        if self.max_uptime is None or self._started_at is None:
            return None
        return max(0.0, self._started_at + self.max_uptime - time.monotonic())

    def _report_hung(self, hang: Hang) -> None:
        name = hang.thread.name
        self.hung.append(name)
        self._hung_at[name] = hang.where
        logger.error(
            "thread %s is hung: no heartbeat for %.1f s (threads.hang_timeout=%s) while "
            "%s, stuck at %s; stopping the run (exit code 1). Progress: %s. Its stack:\n%s",
            name,
            hang.silent_seconds,
            self.hang_watch.timeout,
            hang.doing,
            hang.where,
            dict(hang.thread.status()),
            hang.stack,
        )


def _has_ended(thread: BackgroundThread) -> bool:
    """Whether the thread failed or left its loop (it may still be cleaning up)."""
    return thread.error is not None or thread.control.activity in (
        Activity.STOPPING,
        Activity.FINISHED,
    )


def _compact(summary: Mapping[str, Any]) -> str:
    return "; ".join(f"{name} {values}" for name, values in summary.items())


@contextmanager
def _signals_interrupt(waker: Waker) -> Iterator[None]:
    """Make SIGTERM act like Ctrl+C, and let both wake the main thread's ``select()``.

    On POSIX a signal interrupts ``select()`` anyway; on Windows only a write to a
    selected socket does, which ``signal.set_wakeup_fd`` provides.
    """

    def interrupt(signum: int, frame: types.FrameType | None) -> None:
        raise KeyboardInterrupt

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous_handler = signal.signal(signal.SIGTERM, interrupt)
    previous_fd = signal.set_wakeup_fd(waker.write_fileno(), warn_on_full_buffer=False)
    try:
        yield
    finally:
        signal.set_wakeup_fd(previous_fd)
        signal.signal(signal.SIGTERM, previous_handler)


@contextmanager
def _signals_ignored() -> Iterator[None]:
    """While stopping, a second Ctrl+C must not cut the orderly stop short."""

    def already_stopping(signum: int, frame: types.FrameType | None) -> None:
        logger.warning("already stopping; waiting for the threads to finish")

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {
        sig: signal.signal(sig, already_stopping) for sig in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
