"""Each background thread sets its own CPU scheduling at its start and reports what it got."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from runtime_parts import build_runtime

from ami.openmp import wait_policy
from ami.threads import scheduling
from ami.threads.scheduling import SchedulingError, check_realtime, lower_priority, make_realtime

linux_only = pytest.mark.skipif(
    not hasattr(os, "sched_setscheduler"), reason="SCHED_FIFO and per-thread nice are Linux"
)


def on_a_thread(work: Callable[[], object]) -> object:
    """Run ``work`` on a fresh thread (scheduling sticks to the thread that set it)."""
    result: list[object] = []

    def target() -> None:
        try:
            result.append(work())
        except BaseException as error:
            result.append(error)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join(60)
    assert not thread.is_alive()
    return result[0]


def fifo_permitted() -> bool:
    def probe() -> bool:
        try:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))
        except PermissionError:
            return False
        return True

    return bool(on_a_thread(probe))


@linux_only
def test_realtime_auto_gets_fifo_where_permitted_and_says_so_otherwise() -> None:
    def work() -> tuple[str, int]:
        return make_realtime("auto"), os.sched_getscheduler(0) & ~getattr(
            os, "SCHED_RESET_ON_FORK", 0
        )

    got, policy = on_a_thread(work)  # type: ignore[misc]
    if fifo_permitted():
        assert got == "SCHED_FIFO priority 10"
        assert policy == os.SCHED_FIFO
    else:
        assert got.startswith("normal (SCHED_FIFO not permitted")
        assert policy == os.SCHED_OTHER


def test_a_refusal_is_reported_by_auto_and_an_error_for_fifo(monkeypatch) -> None:
    def refuse(*args: object) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "sched_setscheduler", refuse, raising=False)
    monkeypatch.setattr(os, "SCHED_FIFO", 1, raising=False)
    monkeypatch.setattr(os, "sched_param", lambda priority: priority, raising=False)
    assert "ulimit -r 10" in make_realtime("auto")
    with pytest.raises(SchedulingError, match=r"threads\.inference\.realtime=fifo"):
        make_realtime("fifo")
    assert make_realtime("off") == "normal (threads.inference.realtime=off)"


@linux_only
def test_nice_applies_to_the_calling_thread_only() -> None:
    before = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    def work() -> tuple[str, int]:
        return lower_priority(5), os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    got, niced = on_a_thread(work)  # type: ignore[misc]
    assert got == f"nice {min(19, before + 5):+d}"
    assert niced == min(19, before + 5)
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == before


def test_bad_realtime_modes_are_refused_naming_the_key() -> None:
    with pytest.raises(ValueError, match=r"threads\.inference\.realtime='yes'"):
        check_realtime("threads.inference.realtime", "yes")


@linux_only
def test_the_threads_of_a_run_report_their_scheduling(tmp_path: Path) -> None:
    runtime = build_runtime(tmp_path, max_uptime=0.5)
    assert runtime.main.run() == 0
    inference = runtime.inference.status()["scheduling"]
    expected = "SCHED_FIFO priority 10" if fifo_permitted() else "normal (SCHED_FIFO"
    assert str(inference).startswith(expected)
    training = str(runtime.training.status()["scheduling"])
    assert training.startswith("nice +")
    assert training.endswith(f"; OpenMP workers {wait_policy()}")
    assert scheduling.FIFO_PRIORITY == 10
