"""The agent's clock with training beside it: the fixed workload of issue 12, on the runtime.

The agent acts in a real-time world, so what matters is how late each step *starts*
against its deadline while training runs at full speed on the same cores, and how much
of its standalone speed training keeps beside the agent. This script measures both on
one fixed workload, the one the issue compared this project against the original
MLShukai/ami and pamiq-core with, built from the project's own runtime (the three
threads, the model gate, the collector and a buffer, a ``Trainer`` subclass, an
``Environment`` and an ``Agent``), assembled in Python as ``ami.experiment.build`` and
``tests/runtime_parts.py`` do. It measures the runtime, not a toy loop.

The workload:

- world: a 3x64x64 gradient image with an 8x8 white square that the action moves by
  2 px (one category of 5: stay, up, down, left, right);
- agent: every 0.05 s (20 Hz) on the inference thread with one torch thread, a conv
  encoder (4 convs 3->32->64->128->128, kernel 4, stride 2, padding 1, ReLU, then
  Linear(2048, 64): 559,008 parameters) and a linear policy head (64->5) read through
  the model gate's snapshot; it samples one of 5 actions and collects the observation;
- buffer: FIFO of the last 1024 steps (``SequentialBuffer``), batches of 32 drawn
  uniformly;
- trainer: an autoencoder (that encoder and a mirrored transposed-conv decoder, MSE,
  Adam lr 1e-3, no gradient clipping), ``min_new_steps=0`` so it trains as fast as it
  can, publishing to the agent every 10 optimizer steps (``steps_per_run=10``).

One invocation runs three phases, each a fresh runtime in a folder of its own:

1. **standalone**: the training thread alone, buffer pre-filled with 1024 steps of
   the world under random actions, no agent -> ``standalone_steps_per_s``;
2. **no training**: the agent alone (the training thread still takes its steps into
   the buffer, with no trainer) -> ``deviation_*_ms_no_training``;
3. **both**: agent and trainer, buffer pre-filled as in 1 -> everything else.

Every phase runs with the scheduling ``--scheduling`` asks for, the standalone one too,
so that ``train_fraction`` compares like with like.

Phase 3 lasts ``--minutes`` in all, phases 1 and 2 ``--baseline-minutes`` (default: the
same), split into ``--rounds`` rounds of 1, 2, 3, 1, 2, 3... (default: one round per
started minute), each round of a phase with its own ``--warmup`` (5 s) on top; the
figures pool the rounds (every step; optimizer steps over seconds summed). Why rounds:
on a shared 2-core VM, training's speed drifts by a third over minutes with the other
tenants' load, so a standalone speed measured 10 minutes before the speed beside the
agent would make their ratio, ``train_fraction``, mostly drift; alternating one-minute
rounds lets both see the same machine (``train_fraction_by_round`` shows the spread).

Readings come back from each phase's TensorBoard files, skipping its warm-up:
``inference/step_delay`` (how late a step started against its deadline ``start + k *
interval``: the wake-up's jitter; the deviation), ``inference/step_time`` (the step's
own cost), and each trainer's optimizer steps per second: the steps it took after the
warm-up (its ``training/<name>/loss`` records carry its global step) over the time from
the warm-up's end to the phase's last record.

Prints one JSON line per run (``--runs N``):

- ``deviation_{p50,p99,max}_ms``: step-start lateness with training on (phase 3);
  ``deviation_{p50,p99,max}_ms_no_training``: the same in phase 2. The issue's goal
  is p50 <= 0.1, p99 <= 1.0, max <= 2.5 ms over 5 minutes with training on;
- ``step_ms_{p50,p99}`` and their ratio ``step_ms_p99_over_p50``: the agent's own step
  (a ratio well above 1 means training slows the step itself, not only its start);
  ``reaction_ms_{p50,p99}`` and ``reaction_ms_p99_over_p50``: the part of the step
  until its action was applied (``inference/reaction_time``), what the world waits for;
  ``step_ms_{p50,p99}_no_training``: the step in phase 2, the spread of the agent's
  own work (e.g. steps that choose a new action against steps that hold one);
  ``agent_ms_{p50,p99}``, ``agent_ms_p99_over_p50`` (and ``..._no_training``): the
  step without the world's observation (``inference/agent_time``), whose spread is the
  agent's alone, not the rendering's, which varies with what is in view;
- ``train_steps_per_s`` (beside the agent), ``standalone_steps_per_s``, and
  ``train_fraction``, their ratio (goal >= 0.92);
- ``gc_collections`` (phase 3, any thread), ``late_steps`` (started over 1 ms late),
  ``late_steps_after_gc`` (of those, with a collection since the previous step began)
  and ``deviation_max_ms_without_gc``: whether the tail is the garbage collector's
  (``--gc inference`` moves every collection into the agent's slack: ``threads.gc``);
- ``steps`` (agent steps measured in phase 3), ``overruns`` (deadlines skipped in
  phase 3; ``overruns_no_training`` in phase 2), ``loss_final`` (the trainer learns);
- ``scheduling``: what each thread reports it got (``status()["scheduling"]``), as
  ``--scheduling`` asked: ``auto`` (the inference thread on ``SCHED_FIFO`` where
  permitted, training niced by ``--nice``), ``nice`` (no real-time request: what an
  unprivileged user gets everywhere), ``off`` (neither); ``unavailable`` when this
  checkout's threads take no scheduling arguments;
- ``thread_priorities``: the policy and nice value of every thread of the process,
  read from ``/proc`` a second after the first phase 3's warm-up (torch's OpenMP workers
  count under ``others``: they should carry training's nice value);
- ``cpu_percent``: mean CPU per thread in phase 3 (100 = one core; ``other`` is
  mostly training's torch workers), from the run's ``system/*`` charts, and
  ``machine_busy_percent`` (100 = every core busy): what this process and every other
  one on the machine used, so that other tenants' load shows;
- ``torch_threads`` per thread, ``machine`` (cores, load average before the run),
  ``python``, ``torch``, ``date``.

``--experiment default`` measures the default experiment (10 Hz, curious agent, three
trainers) the same way: its config composed with Hydra, built with
``ami.experiment.build``, run with ``max_uptime``; phase 2 with
``model.trainers=null agent.trainers=null model.evaluation=null``, phase 3 as
configured, no standalone phase (``standalone_steps_per_s`` and ``train_fraction`` are
null). ``train_steps_per_s`` is
then the sum over its trainers, ``train_steps_per_s_by_trainer`` each one's. Extra
arguments are Hydra overrides for it.

Reading the numbers: on a shared 2-core machine other tenants' load shows up in every
figure, most in the maxima; compare runs made one after the other, and look at
``machine.load_average`` before trusting a bad one.

Usage: ``python benchmarks/loop.py [--minutes 5] [--runs 1] [--rounds R]
[--scheduling auto|nice|off] [--nice 10] [--baseline-minutes M] [--warmup 5]
[--experiment default [override ...]]``
"""

from __future__ import annotations

import argparse
import datetime
import inspect
import json
import math
import os
import platform
import statistics
import tempfile
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ami  # noqa: F401  (first: it sets OpenMP's wait policy before torch loads)

# isort: split
import torch
from lightning_fabric import Fabric
from measuring import percentile, read_events
from torch import nn
from typing_extensions import override

from ami.data import SequentialBuffer, StepCollector
from ami.interaction import Environment, Interaction
from ami.interaction.agent import Agent
from ami.interaction.spaces import IMAGE, Box, Observation, image_space
from ami.metrics import EventWriter
from ami.metrics.resources import ResourceMonitor
from ami.models import ModelGate
from ami.openmp import wait_policy
from ami.system import SystemControl
from ami.threads import InferenceThread, MainThread, TrainingThread
from ami.threads.run_report import RunReport
from ami.trainers.reconstruction import ReconstructionTrainer

ROOT = Path(__file__).resolve().parents[1]

SIZE = 64
SQUARE = 8
MOVE = 2
MOVES = ((0, 0), (-MOVE, 0), (MOVE, 0), (0, -MOVE), (0, MOVE))
"""(dy, dx) of each action: stay, up, down, left, right."""
LATENT = 64
CAPACITY = 1024
INTERVAL = 0.05
TRAINER = "autoencoder"
SCHEDULING = ("auto", "nice", "off")


class SquareWorld(Environment):
    """A gradient image with a white square that each action moves by 2 px."""

    action_choices = (len(MOVES),)

    def __init__(self) -> None:
        ramp = torch.linspace(0.0, 1.0, SIZE)
        self._background = torch.stack(
            [
                ramp.expand(SIZE, SIZE),  # left to right
                ramp[:, None].expand(SIZE, SIZE),  # top to bottom
                (ramp[None, :] + ramp[:, None]) / 2,  # diagonal
            ]
        ).contiguous()
        self._y = self._x = (SIZE - SQUARE) // 2

    @override
    def observation_space(self) -> dict[str, Box]:
        return image_space(SIZE, SIZE)

    @override
    def observe(self) -> Observation:
        frame = self._background.clone()  # a new tensor each step: the collector keeps it
        frame[:, self._y : self._y + SQUARE, self._x : self._x + SQUARE] = 1.0
        return {IMAGE: frame}

    @override
    def affect(self, action: torch.Tensor) -> None:
        dy, dx = MOVES[int(action[0])]
        self._y = min(max(self._y + dy, 0), SIZE - SQUARE)
        self._x = min(max(self._x + dx, 0), SIZE - SQUARE)


def make_encoder() -> nn.Module:
    """3x64x64 -> 64: four halving convs (32, 64, 128, 128 channels), then a linear layer."""
    layers: list[nn.Module] = []
    for before, after in ((3, 32), (32, 64), (64, 128), (128, 128)):
        layers += [nn.Conv2d(before, after, 4, stride=2, padding=1), nn.ReLU()]
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(128 * 4 * 4, LATENT))


def make_decoder() -> nn.Module:
    """The encoder's mirror: 64 -> 3x64x64 through four doubling transposed convs."""
    layers: list[nn.Module] = [nn.Linear(LATENT, 128 * 4 * 4), nn.Unflatten(1, (128, 4, 4))]
    pairs = ((128, 128), (128, 64), (64, 32), (32, 3))
    for index, (before, after) in enumerate(pairs):
        layers.append(nn.ConvTranspose2d(before, after, 4, stride=2, padding=1))
        layers.append(nn.ReLU() if index < len(pairs) - 1 else nn.Sigmoid())
    return nn.Sequential(*layers)


class PolicyAgent(Agent):
    """Encodes the frame, samples an action from the policy head, collects the frame."""

    def __init__(self, seed: int = 0) -> None:
        self._generator = torch.Generator().manual_seed(seed)

    @override
    def step(self, observation: Observation) -> torch.Tensor:
        image = observation[IMAGE]
        with self.models.snapshot() as models:  # one generation for the whole step
            logits = models["policy"](models["encoder"](image[None]))
        action = torch.multinomial(logits.softmax(-1), 1, generator=self._generator)[0]
        self.collector.append({IMAGE: image, "action": action})
        return action


class AutoencoderTrainer(ReconstructionTrainer):
    """The project's reconstruction trainer as the workload fixes it: Adam, no clipping."""

    def __init__(self) -> None:
        super().__init__(
            batch_size=32, min_new_steps=0, steps_per_run=10, lr=1e-3, max_grad_norm=None
        )

    @override
    def configure_optimizer(self, parameters: Iterable[nn.Parameter]) -> torch.optim.Optimizer:
        return torch.optim.Adam(parameters, lr=self.lr)


def prefill(count: int) -> list[dict[str, torch.Tensor]]:
    """``count`` steps of the world under uniform random actions, in order."""
    world = SquareWorld()
    generator = torch.Generator().manual_seed(1)
    steps = []
    for _ in range(count):
        observation = world.observe()
        action = torch.randint(len(MOVES), (1,), generator=generator)
        world.affect(action)
        steps.append({IMAGE: observation[IMAGE], "action": action})
    return steps


def accepts(function: Any, parameter: str) -> bool:
    """Whether ``function`` takes ``parameter`` (this checkout's threads may predate it)."""
    return parameter in inspect.signature(function).parameters


def scheduling_kwargs(mode: str, nice: int) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """The inference and training threads' arguments for ``mode``; None if unsupported."""
    if not (accepts(InferenceThread, "realtime") and accepts(TrainingThread, "nice")):
        return None
    realtime = "auto" if mode == "auto" else "off"
    return {"realtime": realtime}, {"nice": nice if mode in ("auto", "nice") else None}


def build_loop(
    folder: Path, agent: bool, train: bool, seconds: float, mode: str, nice: int, gc: str = "auto"
) -> tuple[MainThread, bool]:
    """One phase's runtime, wired as ``ami.experiment.build`` wires a launch.

    Returns the main thread and whether the threads took the scheduling arguments.
    """
    torch.manual_seed(0)
    models = ModelGate(
        {
            "encoder": make_encoder(),
            "decoder": make_decoder(),
            "policy": nn.Linear(LATENT, len(MOVES)),
        }
    )
    collector = StepCollector(name="collector", max_pending=10_000)
    buffer = SequentialBuffer(capacity=CAPACITY)
    if train:
        buffer.extend(prefill(CAPACITY))
    scheduling = scheduling_kwargs(mode, nice)
    inference_kwargs, training_kwargs = scheduling or ({}, {})
    main_kwargs: dict[str, Any] = {}
    if accepts(MainThread.__init__, "gc"):  # this checkout can move collections
        inference_kwargs = {**inference_kwargs, "gc": gc}
        main_kwargs["gc"] = gc
    tensorboard = folder / "tensorboard"
    threads: list[InferenceThread | TrainingThread] = []
    if agent:
        policy_agent = PolicyAgent()
        policy_agent.bind(models.inference, collector)
        inference = InferenceThread(
            Interaction(SquareWorld(), policy_agent),
            collector,
            tensorboard,
            models=models.inference,
            interval=INTERVAL,
            torch_threads=1,
            **inference_kwargs,
        )
        threads.append(inference)
    training = TrainingThread(
        collector,
        {"experience": buffer},
        models,
        {TRAINER: AutoencoderTrainer()} if train else {},
        Fabric(accelerator="cpu", devices=1),
        tensorboard,
        **training_kwargs,
    )
    threads.append(training)
    monitored = {"main": threading.current_thread(), **{t.name: t.thread for t in threads}}
    report = RunReport(EventWriter(tensorboard, suffix="main"), ResourceMonitor(monitored))
    main = MainThread(
        SystemControl(),
        threads,
        max_uptime=seconds,
        collector=collector,
        report=report,
        **main_kwargs,
    )
    models.transfer_to(training.thread)
    buffer.transfer_to(training.thread)
    if agent:
        collector.transfer_to(inference.thread)
    collector.transfer_taking_to(training.thread)
    return main, scheduling is not None


def build_experiment(
    folder: Path, train: bool, seconds: float, args: argparse.Namespace
) -> tuple[MainThread, bool]:
    """One phase of a configured experiment, built as a launch builds it."""
    from hydra import compose, initialize_config_dir

    from ami.experiment import build

    overrides = ["web_api=none", f"max_uptime={seconds}"]
    if args.experiment != "default":
        overrides.append(f"experiment={args.experiment}")
    if not train:
        overrides += ["model.trainers=null", "agent.trainers=null", "model.evaluation=null"]
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("launch", overrides=[*overrides, *args.overrides])
        supported = "realtime" in cfg.threads.inference and "nice" in cfg.threads.training
        if supported:
            nice = args.nice if args.scheduling in ("auto", "nice") else "null"
            realtime = "auto" if args.scheduling == "auto" else "off"
            scheduling = [f"threads.inference.realtime={realtime}", f"threads.training.nice={nice}"]
            if "gc" in cfg.threads:
                scheduling.append(f"threads.gc={args.gc}")
            cfg = compose("launch", overrides=[*overrides, *scheduling, *args.overrides])
    return build(cfg, folder), supported


@dataclass(frozen=True)
class Phase:
    """What one phase measured after its warm-up, or several rounds of it pooled."""

    delays_ms: list[float]
    step_ms: list[float]
    reaction_ms: list[float]
    """From each step's start until its action was applied (empty for older checkouts)."""
    agent_ms: list[float]
    """Each step's time in the agent, without the world's observation (empty for older
    checkouts)."""
    gc_collections: list[float]
    """Per step (as ``delays_ms``): collections of any thread since the previous step
    began (empty for checkouts that do not chart them)."""
    train_steps: dict[str, int]
    """Optimizer steps taken in the window, by trainer."""
    seconds: float
    """The window's length: from the warm-up's end to the phase's last record."""
    overruns: int
    scheduling: dict[str, str] | str
    torch_threads: dict[str, int]
    cpu_percent: dict[str, float]
    machine_busy_percent: float | None
    priorities: dict[str, Any]
    loss_final: float | None

    def steps_per_s(self) -> dict[str, float]:
        """Optimizer steps per second of each trainer over the window."""
        return {name: steps / self.seconds for name, steps in self.train_steps.items()}

    @staticmethod
    def pooled(rounds: Sequence[Phase]) -> Phase:
        """The rounds as one phase: every step, the steps and seconds summed.

        Settings (scheduling, priorities, threads) are the first round's, the loss the
        last round's; CPU shares are the rounds' means, averaged.
        """
        first, last = rounds[0], rounds[-1]
        names = sorted({name for phase in rounds for name in phase.train_steps})
        busy = [p.machine_busy_percent for p in rounds if p.machine_busy_percent is not None]
        cpu_keys = sorted({key for phase in rounds for key in phase.cpu_percent})
        return Phase(
            delays_ms=[value for phase in rounds for value in phase.delays_ms],
            step_ms=[value for phase in rounds for value in phase.step_ms],
            reaction_ms=[value for phase in rounds for value in phase.reaction_ms],
            agent_ms=[value for phase in rounds for value in phase.agent_ms],
            gc_collections=[value for phase in rounds for value in phase.gc_collections],
            train_steps={n: sum(p.train_steps.get(n, 0) for p in rounds) for n in names},
            seconds=sum(phase.seconds for phase in rounds),
            overruns=sum(phase.overruns for phase in rounds),
            scheduling=first.scheduling,
            torch_threads=first.torch_threads,
            cpu_percent={
                key: round(
                    statistics.fmean(p.cpu_percent[key] for p in rounds if key in p.cpu_percent),
                    1,
                )
                for key in cpu_keys
            },
            machine_busy_percent=round(statistics.fmean(busy), 1) if busy else None,
            priorities=first.priorities,
            loss_final=last.loss_final,
        )


def run_phase(main: MainThread, folder: Path, supported: bool, warmup: float) -> Phase:
    """Run ``main`` to its ``max_uptime`` and read back what the phase measured."""
    threads = {thread.name: thread for thread in main.threads}
    priorities: dict[str, Any] = {}

    def sample_priorities() -> None:
        named = {name: thread.thread.native_id for name, thread in threads.items()}
        priorities.update(thread_priorities({"main": threading.main_thread().native_id, **named}))

    sampler = threading.Timer(warmup + 1.0, sample_priorities)
    sampler.start()
    code = main.run()
    sampler.cancel()
    if code != 0:
        raise SystemExit(f"the run failed (exit {code}): {main.reason}; see {folder}")
    if main.outcome == "interrupted":  # Ctrl+C or SIGTERM ends the phase cleanly: and us
        raise SystemExit("interrupted")
    events = read_events(folder / "tensorboard")
    tags = set(events.Tags()["scalars"])
    trainers = sorted(
        tag.split("/")[1]
        for tag in tags
        if tag.startswith("training/") and tag.endswith("/loss") and tag.count("/") == 2
    )
    timed = [
        t for t in ("inference/step_time", *(f"training/{n}/loss" for n in trainers)) if t in tags
    ]
    if not timed:
        raise SystemExit(f"the run charted no agent step and no optimizer step; see {folder}")
    start = min(events.Scalars(tag)[0].wall_time for tag in timed) + warmup

    def after(tag: str, later: float = 0.0) -> list[Any]:
        if tag not in tags:
            return []
        return [event for event in events.Scalars(tag) if event.wall_time >= start + later]

    # Over the whole window, not first to last step: a trainer that runs in bursts (PPO:
    # 16 quick steps per 128-step rollout) would otherwise count only its bursts.
    end = max(events.Scalars(tag)[-1].wall_time for tag in timed)
    train_steps = {}
    for name in trainers:
        losses = events.Scalars(f"training/{name}/loss")
        before = [event.step for event in losses if event.wall_time < start]
        train_steps[name] = losses[-1].step - (before[-1] if before else 0)
    resources_every = main.report.resources_every if main.report is not None else 5.0
    cpu = {
        tag.removeprefix("system/cpu_percent/"): round(statistics.fmean(values), 1)
        for tag in sorted(tags)
        if tag.startswith("system/cpu_percent/")
        if (values := [e.value for e in after(tag, resources_every)])
    }
    busy = [e.value for e in after("system/machine_cpu_percent", resources_every)]
    status = {name: thread.status() for name, thread in threads.items()}
    training = status.get("training", {})
    report = training.get("trainers", {})
    loss = report.get(TRAINER, {}).get("loss_final") if isinstance(report, dict) else None
    return Phase(
        delays_ms=[e.value * 1e3 for e in after("inference/step_delay")],
        step_ms=[e.value * 1e3 for e in after("inference/step_time")],
        reaction_ms=(
            [e.value * 1e3 for e in after("inference/reaction_time")]
            if "inference/reaction_time" in tags
            else []
        ),
        agent_ms=(
            [e.value * 1e3 for e in after("inference/agent_time")]
            if "inference/agent_time" in tags
            else []
        ),
        gc_collections=[e.value for e in after("inference/gc_collections")],
        train_steps=train_steps,
        seconds=max(end - start, 1e-9),
        overruns=int(getattr(threads.get("inference"), "overruns", 0)),
        scheduling=(
            {name: str(s.get("scheduling", "unreported")) for name, s in status.items()}
            if supported
            else "unavailable"
        ),
        torch_threads={name: thread.torch_threads for name, thread in threads.items()},
        cpu_percent=cpu,
        machine_busy_percent=round(statistics.fmean(busy), 1) if busy else None,
        priorities=priorities,
        loss_final=loss if isinstance(loss, float) else None,
    )


POLICIES = {0: "normal", 1: "SCHED_FIFO", 2: "SCHED_RR", 3: "SCHED_BATCH", 5: "SCHED_IDLE"}


def thread_priorities(named: Mapping[str, int | None]) -> dict[str, Any]:
    """Policy and nice value of each thread of this process (Linux), the named ones by name.

    The others are counted by setting: torch's OpenMP workers are among them, and
    should carry the nice value of the thread that created them.
    """
    names = {tid: name for name, tid in named.items() if tid is not None}
    me = threading.get_native_id()  # the sampling thread: not part of the runtime
    result: dict[str, Any] = {}
    others: dict[str, int] = {}
    try:
        tids = [int(tid) for tid in os.listdir("/proc/self/task")]
    except OSError:
        return {"unavailable": "no /proc/self/task"}
    for tid in sorted(tids):
        if tid == me:
            continue
        try:
            with open(f"/proc/self/task/{tid}/stat") as file:
                fields = file.read().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the thread ended meanwhile
        # Fields after the name: state is field 3; nice 19, rt_priority 40, policy 41.
        nice, rt_priority, policy = int(fields[16]), int(fields[37]), int(fields[38])
        described = POLICIES.get(policy, f"policy {policy}")
        if policy in (1, 2):
            described += f" priority {rt_priority}"
        else:
            described += f" nice {nice:+d}"
        if tid in names:
            result[names[tid]] = described
        else:
            others[described] = others.get(described, 0) + 1
    result["others"] = others
    return result


def milliseconds(values: Sequence[float]) -> dict[str, float | None]:
    """p50, p99 and max of ``values``, rounded; None each if there are none."""
    if not values:
        return {"p50": None, "p99": None, "max": None}
    return {
        "p50": round(percentile(list(values), 50), 3),
        "p99": round(percentile(list(values), 99), 3),
        "max": round(max(values), 3),
    }


def p99_over_p50(figures: dict[str, float | None]) -> float | None:
    """The spread of :func:`milliseconds`' figures: p99 over the median, or None."""
    p50, p99 = figures["p50"], figures["p99"]
    return round(p99 / p50, 2) if p50 and p99 is not None else None


def measure(args: argparse.Namespace, run: int) -> dict[str, Any]:
    """One run: ``rounds`` of the phases, one after the other, then its JSON record."""
    load = [round(value, 2) for value in os.getloadavg()]
    warmup = args.warmup
    rounds = args.rounds or max(1, math.ceil(args.minutes))
    baseline_minutes = args.minutes if args.baseline_minutes is None else args.baseline_minutes
    phase_seconds = warmup + args.minutes * 60 / rounds
    baseline_seconds = warmup + baseline_minutes * 60 / rounds

    def phase(agent: bool, train: bool, seconds: float) -> Phase:
        with tempfile.TemporaryDirectory(prefix="ami-loop-") as out:
            folder = Path(out)
            if args.experiment is None:
                main, supported = build_loop(
                    folder, agent, train, seconds, args.scheduling, args.nice, args.gc
                )
            else:
                main, supported = build_experiment(folder, train, seconds, args)
            return run_phase(main, folder, supported, warmup)

    standalones: list[Phase] = []
    quiets: list[Phase] = []
    boths: list[Phase] = []
    for _ in range(rounds):
        if args.experiment is None:
            standalones.append(phase(agent=False, train=True, seconds=baseline_seconds))
        quiets.append(phase(agent=True, train=False, seconds=baseline_seconds))
        boths.append(phase(agent=True, train=True, seconds=phase_seconds))
    quiet, both = Phase.pooled(quiets), Phase.pooled(boths)
    standalone = Phase.pooled(standalones) if standalones else None

    deviation, quiet_deviation = milliseconds(both.delays_ms), milliseconds(quiet.delays_ms)
    step, quiet_step = milliseconds(both.step_ms), milliseconds(quiet.step_ms)
    reaction = milliseconds(both.reaction_ms)
    agent, quiet_agent = milliseconds(both.agent_ms), milliseconds(quiet.agent_ms)
    rates = both.steps_per_s()
    train_rate = sum(rates.values()) if rates else None
    standalone_rate = standalone.steps_per_s().get(TRAINER) if standalone is not None else None
    record: dict[str, Any] = {
        "experiment": args.experiment or "loop",
        "run": run,
        "minutes": args.minutes,
        "baseline_minutes": baseline_minutes,
        "rounds": rounds,
        "deviation_p50_ms": deviation["p50"],
        "deviation_p99_ms": deviation["p99"],
        "deviation_max_ms": deviation["max"],
        "deviation_p50_ms_no_training": quiet_deviation["p50"],
        "deviation_p99_ms_no_training": quiet_deviation["p99"],
        "deviation_max_ms_no_training": quiet_deviation["max"],
        "step_ms_p50": step["p50"],
        "step_ms_p99": step["p99"],
        "step_ms_p99_over_p50": p99_over_p50(step),
        "reaction_ms_p50": reaction["p50"],
        "reaction_ms_p99": reaction["p99"],
        "reaction_ms_p99_over_p50": p99_over_p50(reaction),
        "step_ms_p50_no_training": quiet_step["p50"],
        "step_ms_p99_no_training": quiet_step["p99"],
        "agent_ms_p50": agent["p50"],
        "agent_ms_p99": agent["p99"],
        "agent_ms_p99_over_p50": p99_over_p50(agent),
        "agent_ms_p99_over_p50_no_training": p99_over_p50(quiet_agent),
        "train_steps_per_s": round(train_rate, 2) if train_rate is not None else None,
        "standalone_steps_per_s": (
            round(standalone_rate, 2) if standalone_rate is not None else None
        ),
        "train_fraction": (
            round(train_rate / standalone_rate, 3) if train_rate and standalone_rate else None
        ),
        "train_fraction_by_round": [
            round(b.steps_per_s()[TRAINER] / s.steps_per_s()[TRAINER], 3)
            if s.steps_per_s().get(TRAINER) and b.steps_per_s().get(TRAINER)
            else None
            for s, b in zip(standalones, boths, strict=False)
        ]
        or None,
        **garbage_figures(both),
        "gc_requested": args.gc,
        "steps": len(both.delays_ms),
        "overruns": both.overruns,
        "overruns_no_training": quiet.overruns,
        "loss_final": round(both.loss_final, 5) if both.loss_final is not None else None,
        "scheduling": both.scheduling,
        "scheduling_requested": args.scheduling,
        "openmp_wait_policy": wait_policy(),
        "thread_priorities": both.priorities,
        "cpu_percent": both.cpu_percent,
        "machine_busy_percent": both.machine_busy_percent,
        "torch_threads": both.torch_threads,
        "machine": {"cores": os.cpu_count(), "load_average": load, "platform": platform.system()},
        "python": platform.python_version(),
        "torch": torch.__version__,
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }
    if args.experiment is not None:
        record["train_steps_per_s_by_trainer"] = {
            name: round(rate, 2) for name, rate in rates.items()
        }
    return record


def garbage_figures(phase: Phase) -> dict[str, Any]:
    """Whether the late steps were the collector's: steps late by over 1 ms, and how many
    of them had a collection (any thread's) since the previous step began."""
    if len(phase.gc_collections) != len(phase.delays_ms):
        return {"gc_collections": None}
    late = [i for i, delay in enumerate(phase.delays_ms) if delay > 1.0]
    without = [d for d, n in zip(phase.delays_ms, phase.gc_collections, strict=True) if n == 0]
    return {
        "gc_collections": int(sum(phase.gc_collections)),
        "late_steps": len(late),
        "late_steps_after_gc": sum(1 for i in late if phase.gc_collections[i] > 0),
        "deviation_max_ms_without_gc": round(max(without), 3) if without else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=5.0, help="phase 3's length")
    parser.add_argument(
        "--baseline-minutes", type=float, default=None, help="phases 1 and 2 (default: --minutes)"
    )
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds skipped per phase")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument(
        "--rounds", type=int, default=None, help="phases split into rounds (default: 1 a minute)"
    )
    parser.add_argument("--scheduling", choices=SCHEDULING, default="auto")
    parser.add_argument("--nice", type=int, default=10, help="training's nice (auto, nice)")
    parser.add_argument(
        "--gc",
        choices=["auto", "inference"],
        default="auto",
        help="threads.gc: Python collects (auto) or the agent does, in its slack (inference)",
    )
    parser.add_argument(
        "--experiment",
        default=None,
        help="measure a configured experiment instead ('default': the launch defaults)",
    )
    parser.add_argument("overrides", nargs="*", help="Hydra overrides for --experiment")
    args = parser.parse_args()
    if args.overrides and args.experiment is None:
        parser.error("overrides apply to --experiment only; the fixed workload takes none")
    for name in ("minutes", "warmup"):
        if getattr(args, name) <= 0:
            parser.error(f"--{name} must be > 0, got {getattr(args, name)}")
    if args.baseline_minutes is not None and args.baseline_minutes <= 0:
        parser.error(f"--baseline-minutes must be > 0, got {args.baseline_minutes}")
    if args.rounds is not None and args.rounds < 1:
        parser.error(f"--rounds must be >= 1, got {args.rounds}")
    if args.runs < 1:
        parser.error(f"--runs must be >= 1, got {args.runs}")
    for run in range(1, args.runs + 1):
        print(json.dumps(measure(args, run)), flush=True)


if __name__ == "__main__":
    main()
