"""Memory and CPU of this process, per named thread, for the ``system/*`` charts.

A sweep runs many settings side by side; the one that swaps, or whose training thread
cannot keep up, shows itself here: resident memory, CPU per thread, the machine's load and
free memory, and CUDA memory where CUDA is in use. The main thread samples every few
seconds between API requests, so a sample reads a handful of ``/proc`` files (or the
platform's equivalent through psutil) and nothing else: about 0.2 ms on Linux with torch
loaded and the three threads running.

CPU percentages need two points in time: the first :meth:`ResourceMonitor.sample` is the
baseline and returns only the memory numbers; every later one returns the CPU used since
the sample before it.

Example:
    >>> monitor = ResourceMonitor({"main": threading.current_thread()})  # doctest: +SKIP
    >>> monitor.sample()                      # baseline: memory only  # doctest: +SKIP
    >>> writer.scalars(monitor.sample(), step=uptime)                  # doctest: +SKIP
    >>> monitor.summary()                                              # doctest: +SKIP
    'rss 512 MB, cpu 180% (main 2%, inference 12%, training 95%, other 70%)'
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Mapping
from typing import Final

import psutil  # type: ignore[import-untyped]  # no types-psutil in the dev extra
import torch

MB: Final = float(1 << 20)
"""Bytes in one charted "MB" (a mebibyte, as ``top`` and ``nvidia-smi`` count)."""

RESERVED_NAMES: Final = frozenset({"process", "other"})
"""``system/cpu_percent/<name>`` keys this module writes itself."""

_NAME: Final = re.compile(r"[A-Za-z0-9_.-]+")

# psutil's thread ids on macOS are list positions (1, 2, ...), not the kernel's ids that
# ``Thread.native_id`` holds (giampaolo/psutil#2420), so a thread cannot be found by id
# there: a wrong match would chart one thread's CPU under another's name.
_THREAD_IDS_MATCH: Final = not psutil.MACOS


class ResourceMonitor:
    """Samples this process's memory and CPU, and the CPU of each named thread.

    ``system/cpu_percent/<name>`` is the CPU of that Python thread alone. torch runs the
    heavy part of training (and of inference's forward passes) in its own worker threads,
    the intra-op (OpenMP) pool and the inter-op pool, which are not the training thread:
    their CPU is in ``system/cpu_percent/other``, with everything else no named thread
    ran (the CUDA driver's threads, short-lived helpers). So a training that is bound by
    its matrix products shows a modest ``training`` and a large ``other``; ``process`` is
    the whole. They are not split further: on Linux the pool's threads carry no name of
    their own (``/proc/<pid>/task/<tid>/comm`` is the process name, the same as every
    Python thread's before Python 3.14), so nothing cheap tells them apart reliably.

    Percentages count one core as 100, except ``system/machine_cpu_percent``, where 100
    is every core of the machine busy (other processes included).

    A named thread appears once it runs and drops out when it has ended (its CPU in the
    interval it ended in counts under ``other``). On macOS psutil cannot match threads by
    id, so only ``process`` is charted there, not the per-thread keys or ``other``; a
    sample whose thread listing psutil refuses (``AccessDenied``) leaves them out too.

    CUDA memory is charted per device once this process has initialised CUDA; sampling
    never initialises it (that would create a context and take GPU memory of its own).

    Args:
        threads: The threads to chart by name, e.g. ``{"main": ..., "inference": ...,
            "training": ...}``; they need not have started yet.

    Raises:
        TypeError: A value is not a :class:`threading.Thread`.
        ValueError: A name is not a plain tag part, is ``process`` or ``other``, or two
            names map to the same thread.
    """

    def __init__(self, threads: Mapping[str, threading.Thread]) -> None:
        self._threads = dict(_checked(threads))
        self._process = psutil.Process()
        self._last: dict[str, float] = {}
        self._then: float | None = None
        self._process_cpu = 0.0
        self._thread_cpu: dict[int, float] | None = None
        self._machine: tuple[float, float] | None = None

    def sample(self) -> dict[str, float]:
        """The current numbers, as ``system/*`` tags (memory in MB, CPU in percent).

        Returns:
            Always ``system/rss_mb`` and ``system/available_memory_mb``, and with CUDA
            initialised ``system/gpu<i>/memory_allocated_mb``, ``memory_reserved_mb`` and
            ``max_memory_allocated_mb`` (the peak so far). From the
            second call on, also ``system/cpu_percent/process``,
            ``system/machine_cpu_percent``, and ``system/cpu_percent/<name>`` for each
            named thread that is alive plus ``system/cpu_percent/other``, all averaged
            over the time since the previous call. The first call returns no CPU keys:
            there is no earlier point to measure from, and a 0 would claim an idle
            process.
        """
        now = time.perf_counter()
        listed = self._list_threads()
        with self._process.oneshot():
            times = self._process.cpu_times()
            rss = self._process.memory_info().rss
        process_cpu = times.user + times.system
        machine = _machine_busy_and_total()
        values: dict[str, float] = {
            "system/rss_mb": rss / MB,
            "system/available_memory_mb": psutil.virtual_memory().available / MB,
        }
        elapsed = None if self._then is None else now - self._then
        if elapsed is not None and elapsed > 0:
            values.update(self._cpu(elapsed, process_cpu, listed, machine))
        if elapsed is None or elapsed > 0:
            # A zero interval (a coarse clock) keeps the older baseline for the next call.
            self._then = now
            self._process_cpu = process_cpu
            self._thread_cpu = listed
            self._machine = machine
        values.update(_cuda_memory())
        self._last = values
        return values

    def summary(self) -> str:
        """The last sample as one line for the console, or "" before the first sample.

        Example: ``rss 512 MB, cpu 180% (main 2%, inference 12%, training 95%, other
        70%), gpu0 812 MB (reserved 1024)``. The CPU part appears from the second sample.
        """
        last = self._last
        if not last:
            return ""
        parts = [f"rss {last['system/rss_mb']:.0f} MB"]
        process = last.get("system/cpu_percent/process")
        if process is not None:
            names = [*self._threads, "other"]
            shares = [
                f"{name} {last[key]:.0f}%"
                for name in names
                if (key := f"system/cpu_percent/{name}") in last
            ]
            parts.append(f"cpu {process:.0f}%" + (f" ({', '.join(shares)})" if shares else ""))
        device = 0
        while (key := f"system/gpu{device}/memory_allocated_mb") in last:
            reserved = last[f"system/gpu{device}/memory_reserved_mb"]
            parts.append(f"gpu{device} {last[key]:.0f} MB (reserved {reserved:.0f})")
            device += 1
        return ", ".join(parts)

    def _list_threads(self) -> dict[int, float] | None:
        """CPU seconds of each named thread that is running, by its id; None if unknown."""
        if not _THREAD_IDS_MATCH:
            return None
        try:
            listing = self._process.threads()
        except psutil.Error:
            # AccessDenied (a hardened system) or a thread vanishing as psutil reads it:
            # this sample charts the process as a whole, not its threads.
            return None
        wanted = {thread.native_id for thread in self._threads.values()}
        return {t.id: t.user_time + t.system_time for t in listing if t.id in wanted}

    def _cpu(
        self,
        elapsed: float,
        process_cpu: float,
        listed: dict[int, float] | None,
        machine: tuple[float, float],
    ) -> dict[str, float]:
        values = {"system/cpu_percent/process": _percent(process_cpu - self._process_cpu, elapsed)}
        busy, total = machine
        if self._machine is not None and total > self._machine[1]:
            share = (busy - self._machine[0]) / (total - self._machine[1])
            values["system/machine_cpu_percent"] = 100.0 * min(1.0, max(0.0, share))
        before = self._thread_cpu
        if listed is None or before is None:
            return values
        named = 0.0
        for name, thread in self._threads.items():
            tid = thread.native_id
            if tid is None or tid not in listed or not thread.is_alive():
                continue  # not started yet, or ended: it drops out
            previous = before.get(tid, 0.0)
            if previous > listed[tid]:
                previous = 0.0  # a new thread reusing an ended one's id
            # A thread that started since the previous sample has spent all its CPU
            # time (counted from 0 at its start) inside this interval.
            used = listed[tid] - previous
            named += used
            values[f"system/cpu_percent/{name}"] = _percent(used, elapsed)
        # The process and its threads are read a moment apart: never chart below zero.
        other = max(0.0, process_cpu - self._process_cpu - named)
        values["system/cpu_percent/other"] = _percent(other, elapsed)
        return values


def _checked(threads: Mapping[str, threading.Thread]) -> Mapping[str, threading.Thread]:
    if not isinstance(threads, Mapping):
        raise TypeError(f"threads must map names to threading.Thread, got {threads!r}")
    seen: dict[int, str] = {}
    for name, thread in threads.items():
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise ValueError(
                f"thread name {name!r} is not a tag part: use letters, digits, '_', '.', '-'"
            )
        if name in RESERVED_NAMES:
            raise ValueError(
                f"thread name {name!r} is reserved for system/cpu_percent/{name}: "
                f"choose a name other than {sorted(RESERVED_NAMES)}"
            )
        if not isinstance(thread, threading.Thread):
            raise TypeError(f"threads[{name!r}] must be a threading.Thread, got {thread!r}")
        if id(thread) in seen:
            raise ValueError(
                f"threads[{name!r}] is the same thread as threads[{seen[id(thread)]!r}]: "
                "name each thread once, or its CPU would count twice"
            )
        seen[id(thread)] = name
    return threads


def _percent(cpu_seconds: float, elapsed: float) -> float:
    return 100.0 * cpu_seconds / elapsed


def _machine_busy_and_total() -> tuple[float, float]:
    """Busy and total CPU seconds of every core since boot, counted as psutil counts them.

    Computed here rather than with ``psutil.cpu_percent()``, whose baseline is global to
    the process: any other caller would shorten our interval.
    """
    times = psutil.cpu_times()
    total = sum(times)
    # Linux counts guest time inside user and nice already.
    total -= getattr(times, "guest", 0.0) + getattr(times, "guest_nice", 0.0)
    # Linux does not count I/O wait as idle; the CPU is not busy then either.
    busy = total - times.idle - getattr(times, "iowait", 0.0)
    return busy, total


def _cuda_memory() -> dict[str, float]:
    """CUDA memory per device, only if this process has initialised CUDA already."""
    if not torch.cuda.is_initialized():  # type: ignore[no-untyped-call]
        return {}
    values: dict[str, float] = {}
    for device in range(torch.cuda.device_count()):
        prefix = f"system/gpu{device}"
        values[f"{prefix}/memory_allocated_mb"] = torch.cuda.memory_allocated(device) / MB
        values[f"{prefix}/memory_reserved_mb"] = torch.cuda.memory_reserved(device) / MB
        values[f"{prefix}/max_memory_allocated_mb"] = torch.cuda.max_memory_allocated(device) / MB
    return values
