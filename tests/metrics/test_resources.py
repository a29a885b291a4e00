import math
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import psutil
import pytest
import torch

from ami.metrics.resources import ResourceMonitor

WAIT = 60.0  # generous: a deadlock fails, a slow machine passes
SPINS = 5_000_000  # a few tenths of a second of one core's Python


@contextmanager
def parked(name: str) -> Iterator[tuple[threading.Thread, threading.Event]]:
    """A started thread that sleeps on an event (no CPU) until the block ends."""
    release = threading.Event()
    thread = threading.Thread(target=release.wait, args=(WAIT,), name=name, daemon=True)
    thread.start()
    try:
        yield thread, release
    finally:
        release.set()
        thread.join(WAIT)


def test_the_first_sample_is_the_baseline_and_returns_memory_only() -> None:
    monitor = ResourceMonitor({"main": threading.current_thread()})
    first = monitor.sample()
    assert set(first) == {"system/rss_mb", "system/available_memory_mb"} | gpu_keys(first)
    time.sleep(0.2)  # lets the machine's CPU counters advance by a few ticks
    second = monitor.sample()
    expected = {
        "system/rss_mb",
        "system/available_memory_mb",
        "system/cpu_percent/process",
        "system/machine_cpu_percent",
        "system/cpu_percent/main",
        "system/cpu_percent/other",
    }
    assert set(second) - gpu_keys(second) == expected
    for key, value in second.items():
        assert type(value) is float, key
        assert math.isfinite(value) and value >= 0.0, (key, value)
    assert second["system/machine_cpu_percent"] <= 100.0
    assert 0.0 < second["system/rss_mb"] < psutil.virtual_memory().total / 2**20


def test_a_spinning_thread_accrues_more_cpu_than_a_sleeping_one() -> None:
    ready = threading.Event()
    go = threading.Event()
    spun = threading.Event()
    release = threading.Event()

    def spin() -> None:
        ready.set()
        go.wait(WAIT)
        count = 0
        while count < SPINS:  # work measured by its own loop count, not by a clock
            count += 1
        spun.set()
        release.wait(WAIT)  # stays alive, idle, until the sample has read it

    busy = threading.Thread(target=spin, daemon=True)
    busy.start()
    with parked("idle") as (idle, _):
        monitor = ResourceMonitor({"busy": busy, "idle": idle})
        assert ready.wait(WAIT)
        monitor.sample()
        go.set()
        assert spun.wait(WAIT), "the spinner never finished its loop"
        values = monitor.sample()
        release.set()
    busy.join(WAIT)

    assert values["system/cpu_percent/busy"] > values["system/cpu_percent/idle"]
    assert values["system/cpu_percent/idle"] < 50.0
    assert values["system/cpu_percent/process"] > 0.0
    assert values["system/cpu_percent/other"] >= 0.0


def test_rss_grows_after_allocating_and_touching_a_large_array() -> None:
    monitor = ResourceMonitor({})
    before = monitor.sample()["system/rss_mb"]
    array = np.ones(200 * 2**20 // 8)  # 200 MB of float64, every page written
    after = monitor.sample()["system/rss_mb"]
    assert array.sum() > 0  # keeps the array alive until it has been measured
    assert after - before > 150.0, (before, after)


def test_a_thread_appears_once_started_and_drops_out_once_ended() -> None:
    release = threading.Event()
    worker = threading.Thread(target=release.wait, args=(WAIT,), daemon=True)
    monitor = ResourceMonitor({"main": threading.current_thread(), "worker": worker})
    monitor.sample()
    assert "system/cpu_percent/worker" not in monitor.sample(), "not started yet"

    worker.start()
    assert "system/cpu_percent/worker" in monitor.sample()

    release.set()
    worker.join(WAIT)
    assert not worker.is_alive()
    values = monitor.sample()
    assert "system/cpu_percent/worker" not in values
    assert {"system/cpu_percent/main", "system/cpu_percent/other"} <= set(values)


def test_a_refused_thread_listing_charts_the_process_without_raising(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monitor = ResourceMonitor({"main": threading.current_thread()})
    monitor.sample()

    def refuse(self: psutil.Process) -> list[object]:
        raise psutil.AccessDenied(self.pid)

    monkeypatch.setattr(psutil.Process, "threads", refuse)
    values = monitor.sample()
    assert "system/cpu_percent/process" in values
    assert "system/cpu_percent/main" not in values
    assert "system/cpu_percent/other" not in values

    monkeypatch.undo()
    # The refused sample was no baseline for threads: the next one waits for two listings.
    assert "system/cpu_percent/main" not in monitor.sample()
    assert "system/cpu_percent/main" in monitor.sample()


def test_gpu_keys_are_absent_while_cuda_is_not_initialised(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: False)
    monitor = ResourceMonitor({})
    monitor.sample()
    assert gpu_keys(monitor.sample()) == set()
    assert "gpu" not in monitor.summary()


def test_each_cuda_device_gets_its_memory_keys_and_a_summary_part(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Runs without a GPU: torch's own counters stand in (the cuda-marked test below uses
    # real ones).
    allocated = {0: 100 * 2**20, 1: 3 * 2**20}
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda d: allocated[d])
    monkeypatch.setattr(torch.cuda, "memory_reserved", lambda d: 2 * allocated[d])
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda d: 4 * allocated[d])
    monitor = ResourceMonitor({})
    values = monitor.sample()
    assert {key: values[key] for key in gpu_keys(values)} == {
        "system/gpu0/memory_allocated_mb": 100.0,
        "system/gpu0/memory_reserved_mb": 200.0,
        "system/gpu0/max_memory_allocated_mb": 400.0,
        "system/gpu1/memory_allocated_mb": 3.0,
        "system/gpu1/memory_reserved_mb": 6.0,
        "system/gpu1/max_memory_allocated_mb": 12.0,
    }
    assert monitor.summary().endswith(", gpu0 100 MB (reserved 200), gpu1 3 MB (reserved 6)")


def test_summary_is_one_line_from_the_last_sample() -> None:
    with parked("inference") as (inference, _), parked("training") as (training, _):
        monitor = ResourceMonitor(
            {"main": threading.current_thread(), "inference": inference, "training": training}
        )
        assert monitor.summary() == ""
        first = monitor.sample()
        assert re.fullmatch(r"rss \d+ MB", monitor.summary()), monitor.summary()
        assert monitor.summary() == f"rss {first['system/rss_mb']:.0f} MB"
        values = monitor.sample()
    line = monitor.summary()
    assert re.fullmatch(
        r"rss \d+ MB, cpu \d+% \(main \d+%, inference \d+%, training \d+%, other \d+%\)", line
    ), line
    assert f"cpu {values['system/cpu_percent/process']:.0f}%" in line


@pytest.mark.parametrize(
    ("threads", "error", "message"),
    [
        ({"other": threading.current_thread()}, ValueError, "'other' is reserved"),
        ({"process": threading.current_thread()}, ValueError, "'process' is reserved"),
        ({"a/b": threading.current_thread()}, ValueError, "'a/b' is not a tag part"),
        ({"": threading.current_thread()}, ValueError, "'' is not a tag part"),
        ({"main": 42}, TypeError, r"threads\['main'\] must be a threading.Thread, got 42"),
        (
            {"main": threading.current_thread(), "again": threading.current_thread()},
            ValueError,
            r"threads\['again'\] is the same thread as threads\['main'\]",
        ),
    ],
)
def test_bad_thread_names_and_values_are_refused_by_name(
    threads: dict[str, object], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        ResourceMonitor(threads)  # type: ignore[arg-type]


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_memory_is_charted_per_device_once_cuda_is_in_use() -> None:
    block = torch.empty(64 * 2**20, dtype=torch.uint8, device="cuda:0")  # 64 MB
    monitor = ResourceMonitor({})
    values = monitor.sample()
    assert values["system/gpu0/memory_allocated_mb"] >= 64.0
    assert values["system/gpu0/memory_reserved_mb"] >= values["system/gpu0/memory_allocated_mb"]
    assert values["system/gpu0/max_memory_allocated_mb"] >= 64.0
    assert len(gpu_keys(values)) == 3 * torch.cuda.device_count()
    assert re.search(r"gpu0 \d+ MB \(reserved \d+\)", monitor.summary()), monitor.summary()
    del block


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_sampling_never_initialises_cuda() -> None:
    # A fresh interpreter: this one may have initialised CUDA in another test.
    script = (
        "import threading, torch\n"
        "from ami.metrics.resources import ResourceMonitor\n"
        "m = ResourceMonitor({'main': threading.current_thread()})\n"
        "m.sample(); m.sample(); m.summary()\n"
        "print(torch.cuda.is_initialized())\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=WAIT, check=True
    )
    assert result.stdout.strip() == "False", result.stderr


def gpu_keys(values: dict[str, float]) -> set[str]:
    return {key for key in values if key.startswith("system/gpu")}
