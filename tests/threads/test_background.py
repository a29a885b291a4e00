"""A background thread's end always reaches the main thread, whatever its cleanup does."""

from __future__ import annotations

import errno
import logging
import threading
from pathlib import Path

import pytest

from ami.system import SystemControl
from ami.system.control import Activity
from ami.threads import BackgroundThread

DEADLINE = 30.0
"""Seconds a thread may take on a busy machine before the test calls it a deadlock."""


class Scripted(BackgroundThread):
    """A thread whose tick, cleanup and TensorBoard close fail as the test scripts."""

    def __init__(
        self,
        tmp_path: Path,
        tick_fails: bool = False,
        finally_fails: bool = False,
        close_fails: bool = False,
    ) -> None:
        super().__init__("worker", tmp_path / "tb")
        self.tick_fails = tick_fails
        self.finally_fails = finally_fails
        self.close_fails = close_fails
        self.in_cleanup = threading.Event()
        self.finish_cleanup = threading.Event()
        self.finish_cleanup.set()

    def on_start(self) -> None:
        if self.close_fails:
            close = self.metrics.close

            def failing_close() -> None:
                close()
                raise OSError(errno.EIO, "event file close failed (scripted)")

            self.metrics.close = failing_close  # type: ignore[method-assign]

    def on_tick(self) -> None:
        if self.tick_fails:
            raise RuntimeError("tick broke (scripted)")
        self.finish()

    def on_finally(self) -> None:
        self.in_cleanup.set()
        assert self.finish_cleanup.wait(DEADLINE)
        if self.finally_fails:
            raise RuntimeError("teardown broke (scripted)")


class Notifications:
    """The main thread's wake-up, recording what each call could see of the thread."""

    def __init__(self) -> None:
        self.seen: list[tuple[bool, Activity]] = []
        self.called = threading.Event()
        self.thread: BackgroundThread | None = None

    def __call__(self) -> None:
        assert self.thread is not None
        self.seen.append((self.thread.control.alive, self.thread.control.activity))
        self.called.set()


def run(thread: Scripted) -> Notifications:
    system = SystemControl()
    notify = Notifications()
    notify.thread = thread
    thread.bind(system.handle_for(thread.name), notify)
    thread.start()
    assert thread.ready.wait(DEADLINE)
    system.start()
    thread.thread.join(DEADLINE)
    assert not thread.thread.is_alive()
    return notify


def test_a_cleanup_that_fails_twice_still_reports_the_end_to_the_main_thread(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    thread = Scripted(tmp_path, tick_fails=True, finally_fails=True, close_fails=True)
    with caplog.at_level(logging.ERROR):
        notify = run(thread)
    assert not thread.control.alive
    assert thread.control.activity is Activity.FINISHED
    assert thread.ready.is_set()
    assert notify.seen[-1] == (False, Activity.FINISHED), "woken after it finished"
    error = thread.error
    assert isinstance(error, RuntimeError) and "tick broke" in str(error), "the cause stays"
    notes = "\n".join(error.__notes__)
    assert "teardown broke" in notes and "event file close failed" in notes
    assert [type(e) for e in thread.cleanup_errors] == [RuntimeError, OSError]
    assert all(e.__context__ is error for e in thread.cleanup_errors), "chained to the cause"
    cleanup_logs = [r for r in caplog.records if "failed while cleaning up" in r.getMessage()]
    assert len(cleanup_logs) == 2, caplog.text
    assert all(r.exc_info is not None for r in cleanup_logs), "tracebacks are logged"
    assert "in on_finally" in cleanup_logs[0].getMessage()
    assert "TensorBoard writer" in cleanup_logs[1].getMessage()


def test_a_cleanup_failure_after_a_clean_end_becomes_the_threads_error(tmp_path: Path) -> None:
    thread = Scripted(tmp_path, finally_fails=True)
    run(thread)
    assert not thread.control.alive
    assert isinstance(thread.error, RuntimeError) and "teardown broke" in str(thread.error)
    assert thread.cleanup_errors == [thread.error]


def test_a_failure_wakes_the_main_thread_before_its_cleanup_ends(tmp_path: Path) -> None:
    thread = Scripted(tmp_path, tick_fails=True)
    thread.finish_cleanup.clear()  # cleanup (e.g. releasing VRChat inputs) takes a while
    system = SystemControl()
    notify = Notifications()
    notify.thread = thread
    thread.bind(system.handle_for(thread.name), notify)
    thread.start()
    assert thread.ready.wait(DEADLINE)
    notify.called.clear()
    system.start()
    assert thread.in_cleanup.wait(DEADLINE)
    assert notify.called.is_set(), "the main thread may stop the others already"
    assert (True, Activity.STOPPING) in notify.seen
    assert thread.error is not None
    thread.finish_cleanup.set()
    thread.thread.join(DEADLINE)
    assert notify.seen[-1] == (False, Activity.FINISHED)
