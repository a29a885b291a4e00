import threading
import time

import pytest
from fake_clock import ManualClock
from runtime_parts import wait_for

from ami.sharing import OwnershipError, ReadOnlyError
from ami.system import SystemControl, SystemState, ThreadControl
from ami.system.control import Activity

DEADLINE = 30.0
"""Seconds a condition may take on a busy machine before the test calls it a deadlock."""


def start_loop(system: SystemControl, name: str, work_seconds: float = 0.001):
    control = system.handle_for(name)
    ticks = {"count": 0}

    def loop() -> None:
        control.wait_for_start()
        try:
            while control.manage_loop():
                time.sleep(work_seconds)  # a unit of work
                ticks["count"] += 1
        finally:
            control.mark_finished()

    thread = threading.Thread(target=loop, name=name, daemon=True)
    thread.start()
    return control, thread, ticks


def test_requested_state_follows_the_main_threads_calls() -> None:
    system = SystemControl()
    assert system.requested is SystemState.ACTIVE
    system.pause()
    assert system.requested is SystemState.PAUSED
    system.resume()
    assert system.requested is SystemState.ACTIVE
    system.shutdown()
    assert system.requested is SystemState.STOPPED
    system.pause()  # no effect once stopped
    assert system.requested is SystemState.STOPPED


def test_without_threads_the_state_is_reached_as_soon_as_it_is_asked_for() -> None:
    system = SystemControl()
    assert system.state is SystemState.STARTING
    system.start()
    assert system.state is SystemState.ACTIVE
    system.pause()
    assert system.state is SystemState.PAUSED, "no live thread left to park"
    system.resume()
    system.shutdown()
    assert system.state is SystemState.STOPPED


def test_state_says_pausing_until_every_live_thread_has_parked() -> None:
    system = SystemControl()
    quick_control = system.handle_for("quick")
    quick = start_worker(quick_control)
    busy = system.handle_for("busy")
    working, release = threading.Event(), threading.Event()

    def loop() -> None:
        busy.wait_for_start()
        while busy.manage_loop():
            working.set()
            assert release.wait(DEADLINE)  # one long unit of work, ended by the test
        busy.mark_finished()

    thread = threading.Thread(target=loop, name="busy", daemon=True)
    thread.start()
    system.start()
    assert working.wait(DEADLINE)
    system.pause()
    wait_for(lambda: quick_control.parked, "quick parks")
    assert system.state is SystemState.PAUSING, "busy is still working"
    assert not system.wait_until_paused(0)
    release.set()
    assert system.wait_until_paused(DEADLINE)
    assert system.state is SystemState.PAUSED
    system.shutdown()
    for worker in (quick, thread):
        worker.join(DEADLINE)


def test_state_says_stopping_until_every_thread_has_finished() -> None:
    system = SystemControl()
    a, b = system.handle_for("a"), system.handle_for("b")
    system.start()
    system.shutdown()
    assert system.state is SystemState.STOPPING
    a.mark_stopping()
    a.mark_finished()
    assert system.state is SystemState.STOPPING, "b has not finished"
    b.mark_finished()
    assert system.state is SystemState.STOPPED


def test_a_thread_leaving_its_loop_makes_the_run_stopping_before_any_request() -> None:
    system = SystemControl()
    failing, _ = system.handle_for("failing"), system.handle_for("other")
    system.start()
    assert system.state is SystemState.ACTIVE
    failing.mark_stopping()  # it failed and is cleaning up; the main thread will stop all
    assert system.state is SystemState.STOPPING
    system.pause()
    assert system.state is SystemState.STOPPING, "never paused while a thread is gone"


def test_pause_is_acknowledged_and_threads_stop_working() -> None:
    system = SystemControl()
    loops = [start_loop(system, name) for name in ("a", "b")]
    system.start()
    wait_for(lambda: all(ticks["count"] > 0 for _, _, ticks in loops), "both threads work")
    system.pause()
    assert system.wait_until_paused(timeout=DEADLINE)
    assert all(control.parked for control, _, _ in loops)
    counts = [ticks["count"] for _, _, ticks in loops]
    time.sleep(0.05)
    assert [ticks["count"] for _, _, ticks in loops] == counts
    system.resume()
    wait_for(
        lambda: all(ticks["count"] > count for (_, _, ticks), count in zip(loops, counts)),
        "the threads resume",
    )
    assert not any(control.parked for control, _, _ in loops)
    system.shutdown()
    for _, thread, _ in loops:
        thread.join(DEADLINE)
        assert not thread.is_alive()


def test_wait_until_paused_times_out_while_a_thread_is_busy() -> None:
    system = SystemControl()
    control = system.handle_for("slow")
    working, release = threading.Event(), threading.Event()

    def loop() -> None:
        control.wait_for_start()
        while control.manage_loop():
            working.set()
            assert release.wait(DEADLINE)
        control.mark_finished()

    thread = threading.Thread(target=loop, name="slow", daemon=True)
    thread.start()
    system.start()
    assert working.wait(DEADLINE)
    system.pause()
    assert not system.wait_until_paused(timeout=0.05)
    release.set()
    assert system.wait_until_paused(timeout=DEADLINE)
    system.shutdown()
    thread.join(DEADLINE)


def test_shutdown_releases_parked_and_waiting_threads() -> None:
    system = SystemControl()
    control = system.handle_for("idle")
    finished = threading.Event()

    def idle() -> None:
        control.wait_for_start()
        while control.manage_loop():
            control.wait()  # nothing to do: block until woken
        finished.set()

    threading.Thread(target=idle, daemon=True).start()
    system.start()
    wait_for(lambda: control.activity is Activity.IDLE, "the thread waits idle")
    system.pause()
    assert system.wait_until_paused(DEADLINE)
    system.shutdown()
    assert finished.wait(DEADLINE)


def test_wait_is_woken_by_wake_and_times_out_otherwise() -> None:
    system = SystemControl()
    control = system.handle_for("t")
    started = time.monotonic()
    assert control.wait(0.02) is False
    assert time.monotonic() - started >= 0.015
    threading.Timer(0.01, control.wake).start()
    assert control.wait(5.0) is True


def start_worker(control: ThreadControl) -> threading.Thread:
    """A thread named worker that loops at safe points until shutdown, then finishes."""

    def loop() -> None:
        control.wait_for_start()
        while control.manage_loop():
            control.wait(0.01)
        control.mark_finished()

    thread = threading.Thread(target=loop, name="worker", daemon=True)
    thread.start()
    return thread


def test_pause_listeners_run_on_the_parking_thread() -> None:
    system = SystemControl()
    control = system.handle_for("worker")
    calls: list[tuple[str, str]] = []
    resumed = threading.Event()
    control.on_pause(lambda: calls.append(("pause", threading.current_thread().name)))
    control.on_resume(
        lambda: (calls.append(("resume", threading.current_thread().name)), resumed.set())
    )

    thread = start_worker(control)
    system.start()
    system.pause()
    assert system.wait_until_paused(1.0)
    system.resume()
    assert resumed.wait(2.0)
    system.shutdown()
    thread.join(2)
    assert calls == [("pause", "worker"), ("resume", "worker")]


def test_background_threads_cannot_control_the_system() -> None:
    system = SystemControl()
    errors: list[BaseException] = []

    def intruder() -> None:
        try:
            system.pause()
        except OwnershipError as error:
            errors.append(error)

    thread = threading.Thread(target=intruder, name="inference")
    thread.start()
    thread.join(2)
    assert len(errors) == 1
    assert "system_control.pause" in str(errors[0])
    assert system.requested is SystemState.ACTIVE


def test_handles_refuse_control_methods_with_a_clear_error() -> None:
    control = SystemControl().handle_for("t")
    for name in ("pause", "resume", "shutdown", "start"):
        with pytest.raises(ReadOnlyError, match=rf"system_control: {name}\(\) changes.*read-only"):
            getattr(control, name)
    with pytest.raises(AttributeError):
        control.no_such_thing  # noqa: B018


def test_an_acknowledgement_of_an_earlier_pause_does_not_count() -> None:
    system = SystemControl()
    control = system.handle_for("worker")
    resuming = threading.Event()
    release = threading.Event()

    def slow_resume() -> None:
        resuming.set()
        assert release.wait(5)

    control.on_resume(slow_resume)

    thread = start_worker(control)
    system.start()
    system.pause()
    assert system.wait_until_paused(1.0)
    system.resume()
    assert resuming.wait(1.0)  # the worker is between pauses, running its resume listener
    system.pause()
    assert not system.wait_until_paused(0.05)
    release.set()
    assert system.wait_until_paused(2.0)
    system.shutdown()
    thread.join(2)


@pytest.mark.parametrize("cycles", [200])
def test_pause_resume_stress(cycles: int) -> None:
    """Many pause/resume cycles with busy threads: every pause is acknowledged in time."""
    system = SystemControl()
    loops = [start_loop(system, name, work_seconds=0.0005) for name in ("a", "b")]
    system.start()
    for _ in range(cycles):
        system.pause()
        assert system.wait_until_paused(timeout=DEADLINE)
        system.resume()
    system.shutdown()
    for _, thread, _ in loops:
        thread.join(DEADLINE)
        assert not thread.is_alive()


def test_safe_points_are_heartbeats_and_silence_counts_only_while_running() -> None:
    clock = ManualClock()
    system = SystemControl(clock=clock)
    control = system.handle_for("worker")
    assert control.activity is Activity.STARTING
    clock.now += 50
    assert control.silent_for() is None, "starting is bounded by threads.start_timeout"
    system.start()
    assert control.wait_for_start()
    assert (control.activity, control.last_beat) == (Activity.RUNNING, 150.0)
    clock.now += 7
    assert control.silent_for() == 7.0
    assert control.manage_loop()
    assert control.last_beat == 157.0 and control.silent_for() == 0.0
    clock.now += 2
    control.beat()  # a long stretch of work that has no safe point
    assert control.silent_for() == 0.0
    control.mark_stopping()
    clock.now += 3
    assert (control.activity, control.silent_for()) == (Activity.STOPPING, 3.0)
    control.manage_loop()  # a safe point passed during cleanup keeps it stopping
    assert control.activity is Activity.STOPPING
    control.mark_finished()
    clock.now += 1000
    assert (control.activity, control.silent_for(), control.alive) == (
        Activity.FINISHED,
        None,
        False,
    )


def test_an_idle_or_parked_thread_owes_no_heartbeat() -> None:
    clock = ManualClock()
    system = SystemControl(clock=clock)
    control = system.handle_for("worker")
    wake_seen = threading.Event()

    def loop() -> None:
        control.wait_for_start()
        while control.manage_loop():
            if control.wait():
                wake_seen.set()
        control.mark_finished()

    thread = threading.Thread(target=loop, name="worker", daemon=True)
    thread.start()
    system.start()
    wait_for(lambda: control.activity is Activity.IDLE, "the worker waits idle")
    clock.now += 1000
    assert control.silent_for() is None, "blocked in wait(): waiting for data, not hung"
    control.wake()
    assert wake_seen.wait(DEADLINE)
    system.pause()
    assert system.wait_until_paused(DEADLINE)
    assert control.activity is Activity.PARKED
    clock.now += 1000
    assert control.silent_for() is None, "parked for a pause: waiting for resume"
    beat_before_resume = control.last_beat
    system.resume()
    wait_for(lambda: control.last_beat > beat_before_resume, "leaving the pause beats")
    system.shutdown()
    thread.join(DEADLINE)
    assert not thread.is_alive()
