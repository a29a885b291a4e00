"""How much a model sync stalls the inference thread, against a naive copy under a lock.

For models of about 1M, 10M and 100M parameters, an inference thread calls the model
in a tight loop (batch 1) while the training thread syncs repeatedly. A call's stall
is its latency minus the median latency of calls made while no sync ran. Printed, one
JSON line per size:

- ``stall_p50_ms``, ``stall_p99_ms``, ``stall_max_ms``: calls that overlapped a
  :meth:`ModelWrapper.sync` (reference switch, then copy on the training thread);
- ``baseline_stall_*_ms``: the same, for a naive sync that holds the inference lock
  while ``load_state_dict`` copies into the inference module;
- ``sync_ms_p50``: the cost of one sync on the training thread;
- ``copy_only_stall_*_ms``: calls overlapping a plain copy of the same bytes between
  two models nobody reads (no lock, no switch, no waiting for quiet moments): what
  two threads sharing the cores and the memory bus cost a copy that ignores the
  inference thread.

Usage: ``python benchmarks/sync.py [--sizes 1M 10M 100M] [--seconds 4] [--torch-threads N]
[--switch-interval S]``
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
from collections.abc import Callable

import torch
from torch import nn

from ami.models import ModelWrapper
from ami.models.parameter_copy import copy_serially

SIZES = {"1M": 500, "10M": 1580, "100M": 5000}  # width of a 4-layer MLP


def mlp(width: int) -> nn.Module:
    layers: list[nn.Module] = []
    for _ in range(4):
        layers += [nn.Linear(width, width, bias=False), nn.ReLU()]
    return nn.Sequential(*layers)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def measure(
    call: Callable[[], object],
    sync: Callable[[], None] | None,
    seconds: float,
    pause_between_syncs: float,
) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
    """Run calls on a thread named inference for ``seconds`` while this thread syncs."""
    calls: list[tuple[float, float]] = []
    syncs: list[tuple[float, float]] = []
    stop = threading.Event()

    def inference() -> None:
        while not stop.is_set():
            start = time.perf_counter()
            call()
            calls.append((start, time.perf_counter()))
            # Yield between calls, as a real agent does between its model calls: without
            # it, this thread re-takes the (unfair) lock at once and the naive baseline
            # could never sync.
            time.sleep(0)

    thread = threading.Thread(target=inference, name="inference")
    thread.start()
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        if sync is not None:
            start = time.perf_counter()
            sync()
            syncs.append((start, time.perf_counter()))
        time.sleep(pause_between_syncs)
    stop.set()
    thread.join()
    return calls, syncs


def overlapping(calls: list[tuple[float, float]], syncs: list[tuple[float, float]]) -> list[float]:
    latencies = []
    for start, end in calls:
        if any(start < s_end and s_start < end for s_start, s_end in syncs):
            latencies.append(end - start)
    return latencies


def run_size(label: str, seconds: float) -> dict[str, object]:
    width = SIZES[label]
    torch.manual_seed(0)
    wrapper = ModelWrapper("bench", mlp(width))
    x = torch.randn(1, width)
    for _ in range(3):
        wrapper.inference(x)  # warm-up
        wrapper.sync()

    # Without syncs: the reference latency.
    calls, _ = measure(lambda: wrapper.inference(x), None, seconds / 2, 0.05)
    quiet = statistics.median(end - start for start, end in calls)
    # Switch the pause between syncs so that most calls overlap a sync, but not all.
    pause = max(quiet, 0.001)

    calls, syncs = measure(lambda: wrapper.inference(x), wrapper.sync, seconds, pause)
    stalls = [(latency - quiet) * 1e3 for latency in overlapping(calls, syncs)]
    sync_ms = [(end - start) * 1e3 for start, end in syncs]

    # Naive baseline: the inference copy is overwritten under the lock it is read with.
    training = mlp(width)
    inference_module = mlp(width).eval().requires_grad_(False)
    lock = threading.Lock()

    def naive_call() -> object:
        with lock, torch.inference_mode():
            return inference_module(x)

    def naive_sync() -> None:
        with lock:
            inference_module.load_state_dict(training.state_dict())

    naive_sync()
    calls, syncs = measure(naive_call, naive_sync, seconds, pause)
    baseline = [(latency - quiet) * 1e3 for latency in overlapping(calls, syncs)]

    # The same bytes copied between two models nobody reads, with no lock, no switch and
    # no waiting for quiet moments: the stall of sharing cores and memory with a copy.
    idle = [*mlp(width).parameters()]
    floor_calls, copies = measure(
        lambda: wrapper.inference(x),
        lambda: copy_serially(idle, [*training.parameters()]),
        seconds,
        pause,
    )
    floor = [(latency - quiet) * 1e3 for latency in overlapping(floor_calls, copies)]

    return {
        "size": label,
        "params": wrapper.parameter_count,
        "torch_threads": torch.get_num_threads(),
        "switch_interval_ms": sys.getswitchinterval() * 1e3,
        "inference_call_ms_p50": round(quiet * 1e3, 3),
        "calls_during_syncs": len(stalls),
        "stall_p50_ms": round(percentile(stalls, 50), 3),
        "stall_p99_ms": round(percentile(stalls, 99), 3),
        "stall_max_ms": round(max(stalls), 3),
        "sync_ms_p50": round(statistics.median(sync_ms), 3),
        "syncs": len(sync_ms),
        "baseline_stall_p50_ms": round(percentile(baseline, 50), 3),
        "baseline_stall_p99_ms": round(percentile(baseline, 99), 3),
        "baseline_stall_max_ms": round(max(baseline), 3),
        "copy_only_stall_p50_ms": round(percentile(floor, 50), 3),
        "copy_only_stall_p99_ms": round(percentile(floor, 99), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    parser.add_argument("--seconds", type=float, default=4.0, help="per measurement")
    parser.add_argument("--torch-threads", type=int, default=None)
    parser.add_argument(
        "--switch-interval",
        type=float,
        default=0.001,
        help="GIL switch interval, as the runtime sets it (threads.gil_switch_interval)",
    )
    args = parser.parse_args()
    if args.torch_threads:
        torch.set_num_threads(args.torch_threads)
    sys.setswitchinterval(args.switch_interval)
    threading.current_thread().name = "training"
    for label in args.sizes:
        print(json.dumps(run_size(label, args.seconds)), flush=True)


if __name__ == "__main__":
    main()
