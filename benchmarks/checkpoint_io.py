"""How fast checkpoints are written and read, and how long a write holds the GIL.

The main thread writes checkpoints a few MB per turn of its select loop while the
inference thread needs the GIL every few ms, so the number that matters most is
``max_gap_ms``: the longest a second thread, waking every 0.5 ms, was kept waiting
while the writer ran ``advance(4 MB)`` calls back to back. Two baselines tell the GIL
from a busy machine: ``baseline_max_gap_ms``, the same thread with nothing else
running, and ``busy_no_gil_max_gap_ms``, with the main thread hashing (CPU work that
releases the GIL, as the writer's does). The ``p99`` versions are less noisy on a
shared machine; ``finish_ms`` is the last call (header, fsync, rename). A full cyclic
garbage collection also holds the GIL (tens of ms with torch loaded, wherever it is
triggered): ``gc_pause_while_writing_max_ms`` says whether one fell in the writing.

Speeds: one ``advance(None)`` (fsync included), 4 MB steps, ``read`` (verify and build
tensors) with the file in the page cache and after dropping it from the cache
(``posix_fadvise``, Linux), ``read_header_and_verify``, and ``torch.save`` /
``torch.load`` of the same state for comparison. The first line compares the hashes.

One JSON line per size. Usage:
``python benchmarks/checkpoint_io.py [--sizes-mb 100 400] [--dir /tmp] [--repeats 3]``
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import os
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ami  # noqa: F401  (first: it sets OpenMP's wait policy before torch loads)

# isort: split
import torch

from ami.checkpoints.file_format import (
    CheckpointWriter,
    encode,
    read,
    read_header_and_verify,
)

STEP = 4 << 20


def hash_rates(megabytes: int = 256) -> dict[str, float]:
    buffer = memoryview(os.urandom(megabytes << 20))
    rates = {}
    for name in ("sha256", "blake2b"):
        digest = hashlib.new(name)
        start = time.perf_counter()
        for offset in range(0, buffer.nbytes, STEP):
            digest.update(buffer[offset : offset + STEP])
        rates[name] = round(megabytes / (time.perf_counter() - start), 1)
    return rates


def make_state(megabytes: int) -> dict[str, Any]:
    """Model-like: many 4 MB float32 tensors, some small ones, a few plain values."""
    layers = {f"layer{i}.weight": torch.randn(1 << 20) for i in range(megabytes // 4)}
    small = {f"layer{i}.bias": torch.randn(256) for i in range(megabytes // 4)}
    return {"models": {"net": {**layers, **small}}, "trainers": {"t": {"global_step": 7}}}


class GapWatcher:
    """A thread that sleeps 0.5 ms at a time and records the waits between its wake-ups."""

    def __init__(self) -> None:
        self.gaps: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> GapWatcher:
        self._thread.start()
        time.sleep(0.05)
        self.gaps.clear()  # thread start-up is not what we measure
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        last = time.perf_counter()
        while not self._stop.is_set():
            time.sleep(0.0005)
            now = time.perf_counter()
            self.gaps.append(now - last)
            last = now


class Gaps:
    """Gaps of several runs of one kind: the longest, and the 99th percentile."""

    def __init__(self) -> None:
        self.all: list[float] = []

    def add(self, watcher: GapWatcher) -> None:
        self.all.extend(watcher.gaps)

    def max_ms(self) -> float:
        return round(max(self.all) * 1e3, 2)

    def p99_ms(self) -> float:
        return round(statistics.quantiles(self.all, n=100)[98] * 1e3, 2)


class GcPauses:
    """The longest cyclic-GC pause while active: a full collection holds the GIL too."""

    def __init__(self) -> None:
        self.longest = 0.0
        self._start = 0.0
        self.active = False
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._start = time.perf_counter()
        elif self.active:
            self.longest = max(self.longest, time.perf_counter() - self._start)


def busy_without_gil(seconds: float) -> None:
    """CPU work that releases the GIL (hashing 4 MB chunks): contention, not the GIL."""
    buffer = memoryview(bytes(STEP))
    digest = hashlib.sha256()
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        digest.update(buffer)


def drop_from_cache(path: Path) -> bool:
    if not hasattr(os, "posix_fadvise"):
        return False
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)
    return True


def settle() -> None:
    """Start each timed write with no dirty pages left by the previous one (fair to both)."""
    if hasattr(os, "sync"):
        os.sync()


def timed(action: Callable[[], Any]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def measure(megabytes: int, directory: Path, repeats: int, pauses: GcPauses) -> dict[str, Any]:
    state = make_state(megabytes)
    path = directory / "bench.ckpt"
    encoded = encode(state)
    size_mb = encoded.bytes_total / 1e6
    once, steps, warm, cold, verify, finish = [], [], [], [], [], []
    advance_max = 0.0
    writing, reading, idle, busy = Gaps(), Gaps(), Gaps(), Gaps()
    for _ in range(repeats):
        settle()
        once.append(timed(lambda: CheckpointWriter(path, encode(state)).advance(None)))
        path.unlink()
        writer = CheckpointWriter(path, encode(state))
        settle()
        gc.collect()
        pauses.active = True
        with GapWatcher() as watcher:
            start = time.perf_counter()
            while writer.bytes_written + STEP < writer.bytes_total:
                call = time.perf_counter()
                writer.advance(STEP)
                advance_max = max(advance_max, time.perf_counter() - call)
            call = time.perf_counter()
            writer.advance(STEP)  # the last bytes, header, fsync, rename
            finish.append(time.perf_counter() - call)
            steps.append(time.perf_counter() - start)
        pauses.active = False
        writing.add(watcher)
        with GapWatcher() as watcher:
            time.sleep(steps[-1])
        idle.add(watcher)
        with GapWatcher() as watcher:
            busy_without_gil(steps[-1])
        busy.add(watcher)
        with GapWatcher() as watcher:
            warm.append(timed(lambda: read(path)))
        reading.add(watcher)
        verify.append(timed(lambda: read_header_and_verify(path)))
        if drop_from_cache(path):
            cold.append(timed(lambda: read(path)))
    legacy = directory / "bench.pt"
    save_s = statistics.median(timed(lambda: torch.save(state, legacy)) for _ in range(repeats))
    load_s = statistics.median(
        timed(lambda: torch.load(legacy, weights_only=True)) for _ in range(repeats)
    )
    legacy.unlink()
    path.unlink()

    def rate(seconds: list[float]) -> float | None:
        return round(size_mb / statistics.median(seconds), 1) if seconds else None

    return {
        "mb": round(size_mb, 1),
        "tensors": len(encoded.entries),
        "write_once_mb_s": rate(once),
        "write_4mb_steps_mb_s": rate(steps),
        "longest_advance_4mb_ms": round(advance_max * 1e3, 2),
        "finish_ms": round(statistics.median(finish) * 1e3, 1),
        "read_warm_mb_s": rate(warm),
        "read_cold_mb_s": rate(cold),
        "verify_warm_mb_s": rate(verify),
        "max_gap_ms": writing.max_ms(),
        "p99_gap_ms": writing.p99_ms(),
        "gc_pause_while_writing_max_ms": round(pauses.longest * 1e3, 2),
        "read_max_gap_ms": reading.max_ms(),
        "read_p99_gap_ms": reading.p99_ms(),
        "baseline_max_gap_ms": idle.max_ms(),
        "baseline_p99_gap_ms": idle.p99_ms(),
        "busy_no_gil_max_gap_ms": busy.max_ms(),
        "busy_no_gil_p99_gap_ms": busy.p99_ms(),
        "torch_save_mb_s": rate([save_s]),
        "torch_load_mb_s": rate([load_s]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes-mb", nargs="+", type=int, default=[100, 400])
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()))
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(json.dumps({"hash_mb_s": hash_rates()}), flush=True)
    with tempfile.TemporaryDirectory(dir=args.dir) as folder:
        for megabytes in args.sizes_mb:
            pauses = GcPauses()
            print(json.dumps(measure(megabytes, Path(folder), args.repeats, pauses)), flush=True)


if __name__ == "__main__":
    main()
