"""How much a model sync stalls the inference thread, against a naive copy under a lock.

For models of about 1M, 10M and 100M parameters, an inference thread calls the model
in a tight loop (batch 1) while the training thread alternates quiet phases (doing
nothing) and sync phases (syncing repeatedly) of equal length. A stall at a percentile
is the latency at that percentile of the calls that overlapped a sync minus the latency
at the same percentile of the quiet phases' calls. Interleaving the phases lets both
sets of calls see the same machine: on a 2-core VM, a call's latency drifts by more
than a millisecond between windows measured one after the other. Printed, one JSON
line per size:

- ``stall_p50_ms``, ``stall_p99_ms``, ``stall_max_ms``: calls that overlapped a
  :meth:`ModelGate.publish` (reference switch, then copy on the training thread); each
  call opens its own snapshot, as an agent step with one model call would;
- ``quiet_call_*_ms``: latencies of the quiet calls, whose spread is the machine's
  own jitter; ``p99_over_quiet_p50_ms``: the stricter reading that counts it as
  stall (p99 of the calls during syncs minus the median quiet call);
- ``baseline_stall_*_ms``: the same as ``stall_*``, for a naive sync that holds the
  inference lock while ``load_state_dict`` copies into the inference module;
- ``sync_ms_p50``: the cost of one sync on the training thread;
- ``copy_only_stall_*_ms``: calls overlapping a plain copy of the same bytes between
  two models nobody reads (no lock, no switch, no waiting for quiet moments): what
  two threads sharing the cores and the memory bus cost a copy that ignores the
  inference thread.

The inference thread uses one CPU thread per torch operation, as the runtime's
``threads.inference.torch_threads`` does by default; ``--inference-torch-threads 2``
shows why (a forward pass split over both cores waits whenever the copy holds one).

Usage: ``python benchmarks/sync.py [--sizes 1M 10M 100M] [--seconds 30]
[--min-syncs 40] [--phase-seconds 1] [--torch-threads N] [--inference-torch-threads N]
[--switch-interval S] [--scheduling auto|nice|off]``

``--scheduling`` applies the runtime's thread scheduling (:mod:`ami.threads.scheduling`)
to the two threads: ``auto`` by default, as a run does.
"""

from __future__ import annotations

import argparse
import bisect
import gc
import json
import statistics
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import ami  # noqa: F401  (first: it sets OpenMP's wait policy before torch loads)

# isort: split
import torch
from measuring import percentile
from torch import nn

from ami.models import ModelGate
from ami.models.parameter_copy import copy_serially
from ami.sharing.ownership import Owned
from ami.threads.scheduling import Realtime, lower_priority, make_realtime

SIZES = {"1M": 500, "10M": 1580, "100M": 5000}  # width of a 4-layer MLP


def mlp(width: int) -> nn.Module:
    layers: list[nn.Module] = []
    for _ in range(4):
        layers += [nn.Linear(width, width, bias=False), nn.ReLU()]
    return nn.Sequential(*layers)


@dataclass
class Measurement:
    """Latencies of the calls made during syncs and of those in the quiet phases."""

    during: list[float] = field(default_factory=list)
    quiet: list[float] = field(default_factory=list)
    syncs: list[float] = field(default_factory=list)

    @classmethod
    def of(
        cls,
        calls: list[tuple[float, float]],
        syncs: list[tuple[float, float]],
        phases: list[tuple[float, float]],
    ) -> Measurement:
        """Sort ``calls`` into the ``phases`` (quiet, sync, quiet, ..., quiet).

        A call that overlapped any sync counts as during; one that ran wholly inside a
        quiet phase counts as quiet; the others (between two syncs of a phase) not at all.
        """
        result = cls(syncs=[end - start for start, end in syncs])
        sync_starts = [start for start, _ in syncs]  # syncs run one after another
        index = 0
        for start, end in calls:
            last = bisect.bisect_left(sync_starts, end) - 1  # the last sync begun before
            if last >= 0 and syncs[last][1] > start:
                result.during.append(end - start)
                continue
            while index < len(phases) and start >= phases[index][1]:
                index += 1
            if index % 2 == 0 and index < len(phases):
                quiet_start, quiet_end = phases[index]
                if quiet_start <= start and end <= quiet_end:
                    result.quiet.append(end - start)
        return result

    def stalls(self) -> dict[str, float]:
        """Each percentile of the calls during syncs minus the same percentile without."""
        return {
            "p50": percentile(self.during, 50) - percentile(self.quiet, 50),
            "p99": percentile(self.during, 99) - percentile(self.quiet, 99),
            "max": max(self.during) - max(self.quiet),
        }


@dataclass(frozen=True)
class Settings:
    """How long to measure, and how the inference thread runs torch."""

    seconds: float
    """Least time spent in sync and quiet phases, per measurement."""
    min_syncs: int
    """Least number of syncs per measurement: a 100M sync takes 1.6 s, and the host's
    own bursts of slow calls (up to +25 ms each) even out only over thousands of calls."""
    phase_seconds: float
    inference_threads: int
    realtime: Realtime = "auto"
    """The inference thread's ``threads.inference.realtime``."""
    nice: int | None = 10
    """The training thread's ``threads.training.nice``."""


def measure(
    call: Callable[[], object],
    sync: Callable[[], None],
    pause_between_syncs: float,
    settings: Settings,
    writes: Sequence[Owned] = (),
    scheduling: dict[str, str] | None = None,
) -> Measurement:
    """Call in a tight loop on a thread named inference while another alternates phases.

    The other thread, named training, becomes the writer of ``writes`` (the gate it
    publishes) for the measurement and hands them back at its end. Each thread takes
    the scheduling of ``settings`` as the runtime's do and records what it got in
    ``scheduling``.

    Quiet phases (nothing runs beside the calls) alternate with sync phases (syncs,
    each followed by a pause of about one call, for at least ``phase_seconds`` and at
    least one sync); each quiet phase lasts as long as the sync phase before it. It
    ends after ``settings.seconds`` and ``settings.min_syncs``, whichever comes later.
    Interleaved, both sets of calls see the same machine: this VM's call latency
    drifts by milliseconds over seconds (other tenants of the host), which would
    otherwise count as stall, or hide it.
    """
    scheduling = {} if scheduling is None else scheduling
    calls: list[tuple[float, float]] = []
    syncs: list[tuple[float, float]] = []
    phases: list[tuple[float, float]] = []
    stop = threading.Event()

    def inference() -> None:
        scheduling["inference"] = make_realtime(settings.realtime)
        torch.get_num_threads()  # as the runtime's threads do: see BackgroundThread
        torch.set_num_threads(settings.inference_threads)
        while not stop.is_set():
            start = time.perf_counter()
            call()
            calls.append((start, time.perf_counter()))
            # Yield between calls, as a real agent does between its model calls: without
            # it, this thread re-takes the (unfair) lock at once and the naive baseline
            # could never sync.
            time.sleep(0)

    def quiet(length: float) -> None:
        start = time.perf_counter()
        time.sleep(length)
        phases.append((start, time.perf_counter()))

    def training() -> None:
        scheduling["training"] = lower_priority(settings.nice)
        phase_seconds = settings.phase_seconds
        quiet(phase_seconds)
        deadline = time.perf_counter() + settings.seconds
        while time.perf_counter() < deadline or len(syncs) < settings.min_syncs:
            phase_start = time.perf_counter()
            while True:
                start = time.perf_counter()
                sync()
                syncs.append((start, time.perf_counter()))
                time.sleep(pause_between_syncs)
                if time.perf_counter() >= phase_start + phase_seconds:
                    break
            phases.append((phase_start, time.perf_counter()))
            quiet(phases[-1][1] - phase_start)
        for shared in writes:
            shared.transfer_to(main)

    main = threading.current_thread()
    # Both threads are started here, on the main thread, which keeps its own priority:
    # a thread inherits its creator's nice value.
    thread = threading.Thread(target=inference, name="inference")
    thread.start()
    trainer = threading.Thread(target=training, name="training")
    for shared in writes:
        shared.transfer_to(trainer)
    trainer.start()
    trainer.join()
    stop.set()
    thread.join()
    return Measurement.of(calls, syncs, phases)


def run_size(label: str, settings: Settings) -> dict[str, object]:
    width = SIZES[label]
    torch.manual_seed(0)
    gate = ModelGate({"bench": mlp(width)})
    x = torch.randn(1, width)

    def call() -> object:
        with gate.inference.snapshot() as models:
            return models["bench"](x)

    for _ in range(3):
        call()  # warm-up
        gate.publish()
    start = time.perf_counter()
    call()
    # Pause between syncs about one call, so that most calls overlap a sync, not all.
    pause = max(time.perf_counter() - start, 0.001)

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

    # The same bytes copied between two models nobody reads, with no lock, no switch and
    # no waiting for quiet moments: the stall of sharing cores and memory with a copy.
    idle = [*mlp(width).parameters()]

    def plain_copy() -> None:
        copy_serially(idle, [*training.parameters()])

    gc.collect()
    gc.freeze()  # as the runtime does (threads.freeze_gc): full collections stay short
    scheduling: dict[str, str] = {}
    ours = measure(call, gate.publish, pause, settings, [gate], scheduling)
    naive = measure(naive_call, naive_sync, pause, settings)
    floor = measure(call, plain_copy, pause, settings)
    gc.unfreeze()

    stalls, baseline, copy_only = ours.stalls(), naive.stalls(), floor.stalls()
    ms = 1e3

    def rounded(values: dict[str, float], prefix: str) -> dict[str, float]:
        return {f"{prefix}_{key}_ms": round(value * ms, 3) for key, value in values.items()}

    return {
        "size": label,
        "params": gate.parameter_count("bench"),
        "torch_threads": torch.get_num_threads(),
        "inference_torch_threads": settings.inference_threads,
        "switch_interval_ms": sys.getswitchinterval() * ms,
        "scheduling": scheduling,
        "calls_during_syncs": len(ours.during),
        "calls_quiet": len(ours.quiet),
        **rounded(stalls, "stall"),
        "sync_ms_p50": round(statistics.median(ours.syncs) * ms, 3),
        "syncs": len(ours.syncs),
        **rounded(baseline, "baseline_stall"),
        **rounded(copy_only, "copy_only_stall"),
        **rounded(
            {
                "p50": percentile(ours.quiet, 50),
                "p99": percentile(ours.quiet, 99),
                "max": max(ours.quiet),
            },
            "quiet_call",
        ),
        # The strict reading: p99 during syncs against the median quiet call, which
        # counts the machine's own jitter (quiet_call_p99 - quiet_call_p50) as stall.
        "p99_over_quiet_p50_ms": round(
            (percentile(ours.during, 99) - percentile(ours.quiet, 50)) * ms, 3
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    parser.add_argument("--seconds", type=float, default=30.0, help="per measurement")
    parser.add_argument("--min-syncs", type=int, default=40, help="per measurement")
    parser.add_argument(
        "--phase-seconds", type=float, default=1.0, help="length of each sync and quiet phase"
    )
    parser.add_argument(
        "--torch-threads", type=int, default=None, help="the training side's (default: torch's)"
    )
    parser.add_argument(
        "--inference-torch-threads",
        type=int,
        default=1,
        help="the inference thread's (threads.inference.torch_threads)",
    )
    parser.add_argument(
        "--switch-interval",
        type=float,
        default=0.001,
        help="GIL switch interval, as the runtime sets it (threads.gil_switch_interval)",
    )
    parser.add_argument(
        "--scheduling",
        choices=("auto", "nice", "off"),
        default="auto",
        help="as the runtime's threads: auto (inference on SCHED_FIFO where permitted, "
        "training niced), nice (training niced only) or off (neither)",
    )
    args = parser.parse_args()
    if args.torch_threads:
        torch.set_num_threads(args.torch_threads)
    sys.setswitchinterval(args.switch_interval)
    settings = Settings(
        args.seconds,
        args.min_syncs,
        args.phase_seconds,
        args.inference_torch_threads,
        realtime="auto" if args.scheduling == "auto" else "off",
        nice=None if args.scheduling == "off" else 10,
    )
    for label in args.sizes:
        print(
            json.dumps(run_size(label, settings)),
            flush=True,
        )


if __name__ == "__main__":
    main()
