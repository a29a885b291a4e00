"""The main thread: starts the background threads, serves the control API, stops everything.

Order of a run:
1. open the control API (a taken port fails before anything starts);
2. start the training and inference threads; each acquires its resources in
   ``on_start`` and reports ready (the training thread builds its optimizers here, so
   their one-off import stall happens before the agent moves);
3. freeze the garbage collector's view of everything built so far and release the
   threads together;
4. serve requests until a shutdown request, ``max_uptime``, Ctrl+C / SIGTERM or a
   thread's failure;
5. stop in order: shutdown flag, join inference (it releases the world's inputs), join
   training, close the API. The exit code is 0 unless a thread failed or hung.
"""

from __future__ import annotations

import gc
import logging
import selectors
import signal
import sys
import threading
import time
import types
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from ami.config_checks import positive_number
from ami.system.control import SystemControl, SystemState
from ami.threads.background import BackgroundThread
from ami.threads.waker import Waker
from ami.web.api import ControlAPI

logger = logging.getLogger(__name__)


class MainThread:
    """Runs the system from the calling (main) thread.

    Args:
        system: System control; this thread writes it.
        threads: Background threads, in stopping order (inference first, so the world
            is left alone before training stops).
        api: The control API, or None to run without one.
        max_uptime: Seconds after which the run ends cleanly; None runs until stopped.
        start_timeout: Seconds the threads may take to get ready.
        stop_timeout: Seconds each thread may take to stop.
        freeze_gc: Move everything built before the start out of the collector's sight,
            so full collections stay short while large models are loaded.
        gil_switch_interval: Seconds a thread running Python code may keep the GIL
            while another waits for it (``sys.setswitchinterval``) during the run;
            Python's 5 ms default lets the training thread's Python work delay an
            inference step by that much. None leaves it as it is.
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
        gil_switch_interval: float | None = 0.001,
    ) -> None:
        self.check_max_uptime(max_uptime)
        self.system = system
        self.threads = list(threads)
        self.api = api
        self.max_uptime = max_uptime
        self.start_timeout = positive_number("threads.start_timeout", start_timeout)
        self.stop_timeout = positive_number("threads.stop_timeout", stop_timeout)
        self.freeze_gc = freeze_gc
        if gil_switch_interval is not None:
            positive_number("threads.gil_switch_interval", gil_switch_interval)
        self.gil_switch_interval = gil_switch_interval
        self.hung: list[str] = []
        self._waker = Waker()
        self._started_at: float | None = None
        for thread in self.threads:
            thread.bind(system.handle_for(thread.name), self._waker.notify)

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
            with _signals_interrupt(self._waker):
                try:
                    if self.api is not None:
                        self.api.open(self.system, self.status)
                    if self._start():
                        self._serve()
                except KeyboardInterrupt:
                    logger.info("interrupted; stopping")
                finally:
                    self._stop()
        finally:
            self._waker.close()
            sys.setswitchinterval(switch_interval)
        failed = [thread.name for thread in self.threads if thread.error is not None]
        if failed or self.hung:
            logger.error("run failed: thread(s) %s", ", ".join(failed + self.hung))
            return 1
        return 0

    def status(self) -> dict[str, Any]:
        """The system's state and each thread's progress, for the web API."""
        uptime = time.monotonic() - self._started_at if self._started_at is not None else 0.0
        return {
            "status": self.system.state.value,
            "uptime_seconds": round(uptime, 3),
            "process_threads": sorted(thread.name for thread in threading.enumerate()),
            "threads": {
                thread.name: {
                    "alive": thread.control.alive,
                    "parked": thread.control.parked,
                    "error": repr(thread.error) if thread.error is not None else None,
                    **thread.status(),
                }
                for thread in self.threads
            },
        }

    def _start(self) -> bool:
        for thread in self.threads:
            thread.start()
        deadline = time.monotonic() + self.start_timeout
        with selectors.DefaultSelector() as selector:
            selector.register(self._waker, selectors.EVENT_READ)
            while not all(thread.ready.is_set() for thread in self.threads):
                if any(thread.finished for thread in self.threads):
                    break  # one failed during set-up: stop the others now
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    waiting = [t.name for t in self.threads if not t.ready.is_set()]
                    raise TimeoutError(
                        f"thread(s) {waiting} not ready after {self.start_timeout} s "
                        "(threads.start_timeout)"
                    )
                selector.select(remaining)
                self._waker.drain()
        if any(thread.finished for thread in self.threads):
            return False
        if self.freeze_gc:
            gc.collect()
            gc.freeze()
        self._started_at = time.monotonic()
        self.system.start()
        if self.api is not None:
            line = f"Control API: {self.api.url}"
            print(line, flush=True)
            logger.info(line)
        return True

    def _serve(self) -> None:
        assert self._started_at is not None
        deadline = None if self.max_uptime is None else self._started_at + self.max_uptime
        with selectors.DefaultSelector() as selector:
            selector.register(self._waker, selectors.EVENT_READ)
            if self.api is not None:
                selector.register(self.api, selectors.EVENT_READ)
            while self.system.state is not SystemState.STOPPED:
                if any(thread.finished for thread in self.threads):
                    return
                timeout = None if deadline is None else deadline - time.monotonic()
                if timeout is not None and timeout <= 0:
                    logger.info("max_uptime of %s s reached; stopping", self.max_uptime)
                    return
                for key, _ in selector.select(timeout):
                    if key.fileobj is self._waker:
                        self._waker.drain()
                    elif self.api is not None:
                        self.api.handle_request()

    def _stop(self) -> None:
        with _signals_ignored():
            self._stop_in_order()

    def _stop_in_order(self) -> None:
        self.system.shutdown()
        for thread in self.threads:
            if not thread.thread.is_alive() and thread.thread.ident is None:
                continue
            thread.thread.join(self.stop_timeout)
            if thread.thread.is_alive():
                logger.error(
                    "thread %s did not stop within %s s (threads.stop_timeout); abandoning it",
                    thread.name,
                    self.stop_timeout,
                )
                self.hung.append(thread.name)
        if self.api is not None:
            self.api.close()
        if self.freeze_gc:
            gc.unfreeze()
        summary = {thread.name: dict(thread.status()) for thread in self.threads}
        logger.info("stopped: %s", _compact(summary))


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
