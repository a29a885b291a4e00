import threading
import time

import pytest

from ami.sharing import OwnershipError, ReadOnlyError
from ami.system import SystemControl, SystemState, ThreadControl


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


def test_states() -> None:
    system = SystemControl()
    assert system.state is SystemState.ACTIVE
    system.pause()
    assert system.state is SystemState.PAUSED
    system.resume()
    assert system.state is SystemState.ACTIVE
    system.shutdown()
    assert system.state is SystemState.STOPPED
    system.pause()  # no effect once stopped
    assert system.state is SystemState.STOPPED


def test_pause_is_acknowledged_and_threads_stop_working() -> None:
    system = SystemControl()
    loops = [start_loop(system, name) for name in ("a", "b")]
    system.start()
    time.sleep(0.05)
    started = time.monotonic()
    system.pause()
    assert system.wait_until_paused(timeout=1.0)
    assert time.monotonic() - started < 0.5  # one unit of work (1 ms), with CI headroom
    assert all(control.parked for control, _, _ in loops)
    counts = [ticks["count"] for _, _, ticks in loops]
    time.sleep(0.05)
    assert [ticks["count"] for _, _, ticks in loops] == counts
    system.resume()
    deadline = time.monotonic() + 5
    while not all(ticks["count"] > count for (_, _, ticks), count in zip(loops, counts)):
        assert time.monotonic() < deadline, "threads did not resume"
        time.sleep(0.01)
    assert not any(control.parked for control, _, _ in loops)
    system.shutdown()
    for _, thread, _ in loops:
        thread.join(2)
        assert not thread.is_alive()


def test_wait_until_paused_times_out_while_a_thread_is_busy() -> None:
    system = SystemControl()
    _, thread, _ = start_loop(system, "slow", work_seconds=0.5)
    system.start()
    time.sleep(0.05)
    system.pause()
    assert not system.wait_until_paused(timeout=0.05)
    assert system.wait_until_paused(timeout=2.0)
    system.shutdown()
    thread.join(2)


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
    time.sleep(0.02)
    system.pause()
    assert system.wait_until_paused(1.0)
    system.shutdown()
    assert finished.wait(1.0)


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
    assert system.state is SystemState.ACTIVE


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
        assert system.wait_until_paused(timeout=1.0)
        system.resume()
    system.shutdown()
    for _, thread, _ in loops:
        thread.join(2)
        assert not thread.is_alive()
