"""Hang detection judges heartbeats: silence counts only while a thread owes a beat."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from fake_clock import ManualClock
from runtime_parts import wait_for

from ami.system import SystemControl
from ami.system.control import Activity
from ami.threads import BackgroundThread
from ami.threads.liveness import HangWatch

DEADLINE = 30.0
"""Seconds a thread may take on a busy machine before the test calls it a deadlock."""


class Worker(BackgroundThread):
    """Each tick either waits idle or blocks in ``stuck_here`` until the test releases it."""

    def __init__(self, tmp_path: Path, idle: bool) -> None:
        super().__init__("worker", tmp_path)
        self.idle = idle
        self.in_tick = threading.Event()
        self.release = threading.Event()

    def on_tick(self) -> None:
        self.in_tick.set()
        if self.idle:
            self.control.wait()
        else:
            self.stuck_here()

    def stuck_here(self) -> None:
        assert self.release.wait(DEADLINE)


def started(worker: Worker, clock: ManualClock) -> SystemControl:
    system = SystemControl(clock=clock)
    worker.bind(system.handle_for(worker.name), lambda: None)
    worker.start()
    assert worker.ready.wait(DEADLINE)
    system.start()
    assert worker.in_tick.wait(DEADLINE)
    return system


def stop(worker: Worker, system: SystemControl) -> None:
    worker.release.set()
    system.shutdown()
    worker.thread.join(DEADLINE)
    assert not worker.thread.is_alive()


def test_a_working_thread_silent_for_the_timeout_is_hung_and_its_report_says_where(
    tmp_path: Path,
) -> None:
    clock = ManualClock()
    worker = Worker(tmp_path, idle=False)
    watch = HangWatch([worker], timeout=10.0)
    system = started(worker, clock)
    try:
        clock.now += 9.5
        assert watch.find() is None, "not yet"
        assert watch.seconds_to_next_check() == pytest.approx(0.5)
        clock.now += 0.5
        hang = watch.find()
        assert hang is not None and hang.thread is worker
        assert (hang.silent_seconds, hang.doing) == (10.0, "running")
        assert "in stuck_here" in hang.where and "test_liveness.py" in hang.where
        assert "stuck_here" in hang.stack and "on_tick" in hang.stack
        assert watch.find(known=["worker"]) is None, "reported once"
    finally:
        stop(worker, system)


def test_an_idle_thread_is_never_hung_but_is_looked_at_again_within_one_timeout(
    tmp_path: Path,
) -> None:
    clock = ManualClock()
    worker = Worker(tmp_path, idle=True)
    watch = HangWatch([worker], timeout=10.0)
    system = started(worker, clock)
    try:
        wait_for(lambda: worker.control.activity is Activity.IDLE, "the worker waits idle")
        clock.now += 1000
        assert watch.find() is None, "waiting for data is not a hang"
        assert watch.seconds_to_next_check() == 10.0
    finally:
        stop(worker, system)


def test_a_parked_thread_is_never_hung(tmp_path: Path) -> None:
    clock = ManualClock()
    worker = Worker(tmp_path, idle=True)
    watch = HangWatch([worker], timeout=10.0)
    system = started(worker, clock)
    try:
        system.pause()
        assert system.wait_until_paused(DEADLINE)
        clock.now += 1000
        assert watch.find() is None
    finally:
        system.resume()
        stop(worker, system)


def test_without_a_timeout_nothing_is_hung_and_nothing_wakes_the_main_thread(
    tmp_path: Path,
) -> None:
    clock = ManualClock()
    worker = Worker(tmp_path, idle=False)
    watch = HangWatch([worker], timeout=None)
    system = started(worker, clock)
    try:
        clock.now += 1e6
        assert watch.find() is None
        assert watch.seconds_to_next_check() is None
    finally:
        stop(worker, system)


@pytest.mark.parametrize("value", [0, -1.0, "30", True])
def test_a_bad_hang_timeout_is_refused_naming_the_key(tmp_path: Path, value: object) -> None:
    with pytest.raises(ValueError, match=r"threads\.hang_timeout=.*seconds > 0, or null"):
        HangWatch([Worker(tmp_path, idle=True)], timeout=value)  # type: ignore[arg-type]
