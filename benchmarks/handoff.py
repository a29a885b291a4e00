"""How long the training thread takes to take the experience buffer, by its size.

The collector hands its pending steps over by swapping in an empty queue, so the cost
should not depend on how many steps are pending. The baseline copies the pending
steps out and clears the queue (what a take without ownership transfer must do).
One JSON line per size: ``items``, ``take_us`` (median of repeats), ``baseline_us``.

Usage: ``python benchmarks/handoff.py [--sizes 1000 10000 100000 1000000] [--repeats 7]``
"""

from __future__ import annotations

import argparse
import json
import statistics
import threading
import time

import ami  # noqa: F401  (first: it sets OpenMP's wait policy before torch loads)

# isort: split
import torch

from ami.data import Step, StepCollector


def fill(collector: StepCollector, items: int, step: Step) -> None:
    for _ in range(items):
        collector.append(step)


def copying_take(collector: StepCollector) -> list[Step]:
    """The baseline: copy the pending steps out under the lock, then clear."""
    with collector._lock:
        copied = list(collector._pending)
        collector._pending.clear()
    return copied


def time_take(items: int, repeats: int, copy: bool) -> float:
    step: Step = {"image": torch.zeros(3, 84, 84), "action": torch.zeros(5)}
    samples = []
    for _ in range(repeats):
        collector = StepCollector(max_pending=None)
        fill(collector, items, step)
        start = time.perf_counter()
        taken = copying_take(collector) if copy else collector.take()
        samples.append((time.perf_counter() - start) * 1e6)
        assert len(taken) == items
        del taken
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", nargs="+", type=int, default=[1000, 10_000, 100_000, 1_000_000])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    threading.current_thread().name = "inference"  # the collector's writer fills it
    for items in args.sizes:
        take_us = time_take(items, args.repeats, copy=False)
        baseline_us = time_take(items, args.repeats, copy=True)
        print(
            json.dumps(
                {"items": items, "take_us": round(take_us, 2), "baseline_us": round(baseline_us, 2)}
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
