"""Test parts: a scripted world, a tiny trainer, and a runtime built from real parts."""

from __future__ import annotations

import json
import math
import threading
import time
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from lightning_fabric import Fabric
from torch import nn

from ami.checkpoints import CheckpointStore, read, resolve
from ami.checkpoints.saving import Saver
from ami.data import SequentialBuffer, StepCollector
from ami.interaction import Environment, Interaction
from ami.interaction.agents import RandomAgent
from ami.interaction.spaces import Box, Observation, image_space
from ami.models import ModelGate
from ami.resume import Resumed, restore
from ami.system import SystemControl
from ami.threads import InferenceThread, MainThread, TrainingThread
from ami.trainers import Trainer
from ami.web import ControlAPI


class ScriptedWorld(Environment):
    """A world of constant frames that records what happens to it, and on which thread."""

    def __init__(
        self,
        fail_at_step: int | None = None,
        fail_in_setup: bool = False,
        work: Callable[[int], float] | None = None,
    ) -> None:
        self.fail_at_step = fail_at_step
        self.fail_in_setup = fail_in_setup
        self.work = work
        self.steps = 0
        self.step_times: list[float] = []
        self.actions: list[torch.Tensor] = []
        self.events: list[tuple[str, str]] = []
        self.thread_names: set[str] = set()

    def _record(self, event: str) -> None:
        self.events.append((event, threading.current_thread().name))

    def setup(self) -> None:
        self._record("setup")
        if self.fail_in_setup:
            raise RuntimeError("camera not found (scripted)")

    def teardown(self) -> None:
        self._record("teardown")

    def observation_space(self) -> dict[str, Box]:
        return image_space(4, 4)

    def observe(self) -> Observation:
        self.step_times.append(time.perf_counter())
        self.steps += 1
        self.thread_names.update(t.name for t in threading.enumerate())
        if self.fail_at_step is not None and self.steps >= self.fail_at_step:
            raise RuntimeError(f"world broke at step {self.steps} (scripted)")
        if self.work is not None:
            time.sleep(self.work(self.steps))
        return {"image": torch.full((3, 4, 4), (self.steps % 10) / 10)}

    def affect(self, action: torch.Tensor) -> None:
        self.actions.append(action)

    def on_pause(self) -> None:
        self._record("pause")

    def on_resume(self) -> None:
        self._record("resume")

    def metrics(self) -> Mapping[str, float]:
        return {"steps": float(self.steps)}


class BrightnessTrainer(Trainer):
    """Learns the mean brightness of observations: a real, tiny learning job."""

    def __init__(self, step_seconds: float = 0.0, fail_at_run: int | None = None, **kwargs: Any):
        kwargs.setdefault("batch_size", 4)
        kwargs.setdefault("min_new_steps", 4)
        kwargs.setdefault("steps_per_run", 2)
        super().__init__(trains=["brightness"], **kwargs)
        self.step_seconds = step_seconds
        self.fail_at_run = fail_at_run

    def compute_loss(self, batch: Mapping[str, torch.Tensor]) -> Mapping[str, torch.Tensor]:
        if self.fail_at_run is not None and self.runs + 1 >= self.fail_at_run:
            raise RuntimeError("trainer broke (scripted)")
        if self.step_seconds:
            time.sleep(self.step_seconds)
        observation = batch["image"].flatten(1)
        prediction = self.module("brightness")(observation).squeeze(-1)
        loss = (prediction - observation.mean(dim=1)).pow(2).mean()
        return {"loss": loss}


class GatedTrainer(BrightnessTrainer):
    """A trainer whose optimizer step number ``hold_at_step`` waits at a gate the test opens.

    ``entered`` is set once that step is under way; the step goes on once ``release`` is
    set. The wait has a long bound of its own, so a failing test never leaves it stuck.
    With ``inner_safe_points`` every step has safe points inside it (the held one can
    park right after its release, mid-step), else none does (it parks after the step),
    whatever the steps' length on a busy machine.
    """

    def __init__(self, hold_at_step: int = 3, inner_safe_points: bool = False, **kwargs: Any):
        kwargs.setdefault("steps_per_run", 1000)
        kwargs.setdefault("min_new_steps", 1)
        super().__init__(**kwargs)
        self.hold_at_step = hold_at_step
        self.inner_safe_points_after = 0.0 if inner_safe_points else math.inf
        self.entered = threading.Event()
        self.release = threading.Event()

    def compute_loss(self, batch: Mapping[str, torch.Tensor]) -> Mapping[str, torch.Tensor]:
        if self.global_step + 1 == self.hold_at_step:
            self.entered.set()
            self.release.wait(120)
        return super().compute_loss(batch)


@dataclass
class Runtime:
    main: MainThread
    world: ScriptedWorld
    trainer: BrightnessTrainer
    inference: InferenceThread
    training: TrainingThread
    collector: StepCollector
    models: ModelGate
    output_dir: Path
    extra: dict[str, Any] = field(default_factory=dict)


def build_runtime(
    tmp_path: Path,
    world: ScriptedWorld | None = None,
    trainer: BrightnessTrainer | None = None,
    interval: float = 0.01,
    max_uptime: float | None = 1.0,
    api: bool = False,
    stop_timeout: float = 10.0,
    training_cls: type[TrainingThread] = TrainingThread,
    checkpoint_dir: Path | None = None,
    resume_from: Path | None = None,
    hang_timeout: float | None = 30.0,
    inference_cls: type[InferenceThread] = InferenceThread,
    max_pending: int | None = 100_000,
    save_buffers: bool = False,
    save_every: float | None = None,
    keep_last: int | None = None,
    gc: str = "auto",
) -> Runtime:
    """Assemble the three threads from real parts; call on the thread that will run main."""
    world = world or ScriptedWorld()
    trainer = trainer or BrightnessTrainer()
    models = ModelGate({"brightness": nn.Linear(48, 1)})
    collector = StepCollector(max_pending=max_pending)
    agent = RandomAgent([3, 3, 3, 2, 2], action_repeat=2)
    agent.bind(models.inference, collector)
    buffer = SequentialBuffer(capacity=256)
    inference = inference_cls(
        Interaction(world, agent),
        collector,
        tmp_path / "tb" / "inference",
        models=models.inference,
        interval=interval,
        gc=gc,  # type: ignore[arg-type]
    )
    training = training_cls(
        collector,
        {"experience": buffer},
        models,
        {"brightness": trainer},
        Fabric(accelerator="cpu", devices=1),
        tmp_path / "tb" / "training",
        save_buffers=save_buffers,
    )
    if resume_from is not None:
        path = resolve(resume_from)
        restore(Resumed(path, read(path), []), models, {"experience": buffer}, inference, training)
    saver = None
    if checkpoint_dir is not None:
        store = CheckpointStore(checkpoint_dir, keep_last=keep_last)
        saver = Saver(
            store,
            ["inference", "training"],
            lambda reason: {"reason": reason, "config": "", "uptime_seconds": 0.0},
            every=save_every,
        )
    main = MainThread(
        SystemControl(),
        [inference, training],
        api=ControlAPI(port=0) if api else None,
        max_uptime=max_uptime,
        stop_timeout=stop_timeout,
        hang_timeout=hang_timeout,
        collector=collector,
        saver=saver,
        gc=gc,  # type: ignore[arg-type]
    )
    models.transfer_to(training.thread)
    buffer.transfer_to(training.thread)
    collector.transfer_to(inference.thread)
    collector.transfer_taking_to(training.thread)
    return Runtime(main, world, trainer, inference, training, collector, models, tmp_path)


ACTION_CHOICES = [3, 3, 3, 2, 2]


def small_models(seed: int = 0, vae: bool = False) -> ModelGate:
    """The world model's nets at 16x16 with tiny widths, behind a gate for two threads."""
    from ami.models.nets import (
        ForwardDynamics,
        ImageDecoder,
        ImageEncoder,
        PolicyValue,
        VariationalEncoder,
    )

    torch.manual_seed(seed)
    modules: dict[str, nn.Module] = {
        "encoder": ImageEncoder(16, 16, 8, (4, 8)),
        "decoder": ImageDecoder(16, 16, 8, (4, 8)),
        "dynamics": ForwardDynamics(8, ACTION_CHOICES, 16, 4),
        "policy": PolicyValue(8, 16, ACTION_CHOICES, 16),
    }
    if vae:
        modules["vae_encoder"] = VariationalEncoder(16, 16, 8, (4, 8))
    return ModelGate(modules)


def infer(models: ModelGate, name: str, *args: Any) -> Any:
    """One call of a published model, in a snapshot of its own (tests only: agents pin
    one snapshot for a whole step)."""
    with models.inference.snapshot() as snapshot:
        return snapshot[name](*args)


DEADLINE = 60.0
"""Seconds a condition may take on a busy machine before the test calls it a deadlock."""


def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.01)


class Client:
    """The control API, called from the test's own thread while main serves it."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        wait_for(self._open, "the API is open and the run started")

    def _open(self) -> bool:
        api = self.runtime.main.api
        return bool(api is not None and api._server is not None and self.runtime.main._started_at)

    def call(self, method: str, path: str) -> dict[str, Any]:
        assert self.runtime.main.api is not None
        request = urllib.request.Request(
            self.runtime.main.api.url + path,
            method=method,
            data=b"" if method == "POST" else None,
            headers={"Content-Type": "application/json"} if method == "POST" else {},
        )
        with urllib.request.urlopen(request, timeout=DEADLINE) as response:
            body: dict[str, Any] = json.loads(response.read())
            return body

    def status(self) -> dict[str, Any]:
        return self.call("GET", "/api/status")

    def wait_for_status(
        self, condition: Callable[[dict[str, Any]], bool], what: str
    ) -> dict[str, Any]:
        """The first status that meets ``condition``, polled until a generous deadline."""
        deadline = time.monotonic() + DEADLINE
        while not condition(body := self.status()):
            assert time.monotonic() < deadline, f"timed out waiting until {what}: {body}"
            time.sleep(0.01)
        return body


def run_with(runtime: Runtime, script: Callable[[Client], None]) -> int:
    """Run the system on this thread and ``script`` against its API on another."""
    errors: list[BaseException] = []

    def client() -> None:
        try:
            script(Client(runtime))
        except BaseException as error:
            errors.append(error)
            runtime.main.system.shutdown.__wrapped__(runtime.main.system)  # type: ignore[attr-defined]

    thread = threading.Thread(target=client, name="client", daemon=True)
    thread.start()
    code = runtime.main.run()
    thread.join(DEADLINE)
    if errors:
        raise errors[0]
    return code
