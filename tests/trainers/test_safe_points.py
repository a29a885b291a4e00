"""Safe points inside an optimizer step: where they are, what a pause or shutdown there does.

A pause must take effect within about 100 ms even when one optimizer step takes a
second; the step then parks at a layer's forward call or backward pass. The checkpoint
of a thread parked there, and the state after a shutdown there, must be exactly the
state when the step began, so that a resumed run redoes the step bit for bit.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import torch
from lightning_fabric import Fabric
from runtime_parts import Client, GatedTrainer, build_runtime, run_with
from test_checkpoints import wait_written
from torch import nn

from ami.checkpoints import read
from ami.data import SequentialBuffer
from ami.metrics import EventWriter
from ami.models import ModelGate
from ami.state import global_rng_state
from ami.trainers import Trainer
from ami.trainers.safe_points import StepInterrupted, safe_points_in

pytestmark = [pytest.mark.usefixtures("keep_main_thread_name"), pytest.mark.timeout(120)]


class CountingControl:
    """Stands in for a ThreadControl: counts safe points, reports a shutdown at one of them."""

    def __init__(self, shutdown_at: int | None = None) -> None:
        self.calls = 0
        self.threads: set[int] = set()
        self.shutdown_at = shutdown_at

    def manage_loop(self) -> bool:
        self.calls += 1
        self.threads.add(threading.get_ident())
        return self.calls != self.shutdown_at


def two_layers(seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(48, 16), nn.ReLU(), nn.Linear(16, 1))


def test_each_layer_is_a_safe_point_before_its_forward_call_and_in_its_backward_pass() -> None:
    net, control = two_layers(), CountingControl()
    inputs = torch.randn(8, 48)
    reference = two_layers()
    reference(inputs).sum().backward()
    with safe_points_in(control, [net]):  # type: ignore[arg-type]
        net(inputs).sum().backward()
        assert control.calls == 4, "two layers with parameters (ReLU has none), both passes"
    for mine, theirs in zip(net.parameters(), reference.parameters(), strict=True):
        assert torch.equal(mine.grad, theirs.grad), "the hooks leave every gradient as it is"
    net(inputs).sum().backward()
    assert control.calls == 4, "after the step the hooks are gone"
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in net.modules())


@pytest.mark.parametrize("shutdown_at", [2, 3], ids=["in the forward pass", "in the backward pass"])
def test_a_shutdown_at_a_safe_point_abandons_the_step(shutdown_at: int) -> None:
    net, control = two_layers(), CountingControl(shutdown_at=shutdown_at)
    with pytest.raises(StepInterrupted), safe_points_in(control, [net]):  # type: ignore[arg-type]
        net(torch.randn(8, 48)).sum().backward()
    assert control.calls == shutdown_at, "nothing ran past the safe point that saw it"


def test_only_the_steps_own_thread_parks_at_a_safe_point() -> None:
    """On a GPU autograd runs the backward pass on a device thread; that one must not park."""
    net, control = two_layers(), CountingControl()
    with safe_points_in(control, [net]):  # type: ignore[arg-type]
        worker = threading.Thread(target=lambda: net(torch.randn(2, 48)).sum().backward())
        worker.start()
        worker.join(60)
        assert control.calls == 0
        net(torch.randn(2, 48))
    assert control.threads == {threading.get_ident()}


class NoisyTrainer(Trainer):
    """Draws its batch from the buffer's generator and noise from torch's global one."""

    def __init__(self) -> None:
        super().__init__(trains=["net"], batch_size=4, min_new_steps=1, steps_per_run=100)
        self.inner_safe_points_after = 0.0

    def compute_loss(self, batch: Mapping[str, torch.Tensor]) -> Mapping[str, torch.Tensor]:
        observation = batch["observation"].flatten(1)
        noisy = observation + 0.1 * torch.randn(observation.shape)
        prediction = self.module("net")(noisy).squeeze(-1)
        return {"loss": (prediction - observation.mean(dim=1)).pow(2).mean()}


def bound_trainer(tmp_path: Path, control: Any) -> tuple[NoisyTrainer, ModelGate, SequentialBuffer]:
    models = ModelGate({"net": two_layers()})
    buffer = SequentialBuffer(capacity=64, seed=3)
    data = torch.Generator().manual_seed(5)
    buffer.extend({"observation": torch.rand(3, 4, 4, generator=data)} for _ in range(32))
    trainer = NoisyTrainer()
    trainer.bind(
        "noisy",
        models,
        {"experience": buffer},
        Fabric(accelerator="cpu", devices=1),
        control,
        EventWriter(tmp_path),
    )
    trainer.setup()
    return trainer, models, buffer


def state_of(trainer: Trainer, models: ModelGate, buffer: SequentialBuffer) -> dict[str, Any]:
    return {
        "parameters": [p.detach().clone() for p in models.training_module("net").parameters()],
        "optimizer": trainer.optimizer.state_dict(),
        "steps": trainer.global_step,
        "torch_rng": global_rng_state()["torch"],
        "buffer_rng": buffer.generator.get_state(),
    }


def same(a: Any, b: Any) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and torch.equal(a, b)
    if isinstance(a, Mapping):
        return isinstance(b, Mapping) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def test_a_step_abandoned_midway_leaves_no_trace_and_its_redo_matches_an_uninterrupted_run(
    tmp_path: Path,
) -> None:
    torch.manual_seed(11)
    control = CountingControl()
    trainer, models, buffer = bound_trainer(tmp_path / "a", control)
    trainer._optimizer_step()
    trainer._optimizer_step()
    before = state_of(trainer, models, buffer)
    control.shutdown_at = control.calls + 3  # the first layer's backward pass
    with pytest.raises(StepInterrupted):
        trainer._optimizer_step()
    assert same(state_of(trainer, models, buffer), before), "generators wound back too"
    assert all(p.grad is None for p in models.training_module("net").parameters())
    trainer._optimizer_step()  # the redo
    trainer._optimizer_step()
    interrupted = state_of(trainer, models, buffer)

    torch.manual_seed(11)
    twin, twin_models, twin_buffer = bound_trainer(tmp_path / "b", CountingControl())
    for _ in range(4):
        twin._optimizer_step()
    assert same(interrupted, state_of(twin, twin_models, twin_buffer))


class RecordingGatedTrainer(GatedTrainer):
    """Remembers the generators' states at the start of the held step, before its sample."""

    def __init__(self) -> None:
        super().__init__(hold_at_step=3, inner_safe_points=True, steps_per_run=5)
        self.at_start: dict[str, torch.Tensor] = {}

    def sample(self) -> dict[str, torch.Tensor]:
        if self.global_step + 1 == self.hold_at_step and not self.at_start:
            self.at_start = {
                "torch": global_rng_state()["torch"],
                "buffer": self.buffer.generator.get_state(),
            }
        return super().sample()


def test_a_pause_parks_inside_a_step_and_a_save_there_describes_the_steps_start(
    tmp_path: Path,
) -> None:
    trainer = RecordingGatedTrainer()
    runtime = build_runtime(
        tmp_path,
        trainer=trainer,
        api=True,
        max_uptime=None,
        checkpoint_dir=tmp_path / "c",
        save_buffers=True,
    )
    seen: dict[str, Any] = {}

    def script(client: Client) -> None:
        assert trainer.entered.wait(60)
        paused = client.call("POST", "/api/pause")
        assert paused["acknowledged"] is False, "training is held inside its step"
        trainer.release.set()
        client.wait_for_status(lambda s: s["status"] == "paused", "both threads park")
        seen["parked_at"] = trainer.global_step
        number = client.call("POST", "/api/save")["save_request"]
        seen["state"] = read(Path(str(wait_written(client, number)["path"])))
        assert trainer.global_step == seen["parked_at"], "still parked in the step"
        client.call("POST", "/api/resume")
        client.wait_for_status(lambda s: s["status"] == "active", "active again")
        client.wait_for_status(
            lambda s: s["threads"]["training"]["steps"] > seen["parked_at"], "the step ends"
        )
        client.call("POST", "/api/shutdown")

    assert run_with(runtime, script) == 0
    assert seen["parked_at"] == 2, "parked in the third step, which had not ended"
    training = seen["state"]["training"]
    saved = training["trainers"]["brightness"]
    assert saved["global_step"] == 2 and saved["in_run"] == 2
    assert torch.equal(training["rng"]["torch"], trainer.at_start["torch"])
    assert torch.equal(training["buffers"]["experience"]["generator"], trainer.at_start["buffer"])
    assert not torch.equal(
        trainer.at_start["buffer"], runtime.training.buffers["experience"].generator.get_state()
    )
    assert trainer.global_step > 3, "the step and the run went on after the resume"
