"""Every trainer, one short run on a tiny buffer filled by the real curiosity agent.

Each run must change exactly the models the trainer trains: the models it reads (or
never touches) keep their parameters, and the trained ones are published by a sync.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import pytest
import torch
from lightning_fabric import Fabric
from runtime_parts import small_models
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch import nn

from ami.data import DataBuffer, SequentialBuffer, StepCollector
from ami.interaction.agents import CuriosityAgent
from ami.metrics import EventWriter
from ami.models import ModelGate
from ami.system import SystemControl
from ami.trainers import (
    DynamicsTrainer,
    PPOTrainer,
    ReconstructionTrainer,
    Trainer,
    VAETrainer,
)

CHOICES = [3, 3, 3, 2, 2]


def fill(models: ModelGate, buffer: DataBuffer, steps: int) -> None:
    """Let a curiosity agent act on random frames and merge its records into ``buffer``."""
    agent = CuriosityAgent(action_repeat=2, seed=0)
    collector = StepCollector()
    agent.bind(models.inference, collector)
    agent.setup()
    generator = torch.Generator().manual_seed(1)
    for _ in range(steps + 1):
        agent.step({"image": torch.rand(3, 16, 16, generator=generator)})
        agent.after_action()
    buffer.extend(collector.take())


def bind(trainer: Trainer, models: ModelGate, buffer: DataBuffer, tmp_path: Path) -> EventWriter:
    writer = EventWriter(tmp_path / "tb")
    control = SystemControl().handle_for("training")
    fabric = Fabric(accelerator="cpu", devices=1)
    trainer.bind("job", models, {buffer.shared_name: buffer}, fabric, control, writer)
    trainer.setup()
    return writer


def snapshot(models: ModelGate) -> dict[str, list[torch.Tensor]]:
    return {
        name: [p.detach().clone() for p in models.training_module(name).parameters()]
        for name in models.names
    }


def changed(before: list[torch.Tensor], module: nn.Module) -> bool:
    return any(not torch.equal(a, b) for a, b in zip(before, module.parameters()))


def read_scalars(log_dir: Path) -> EventAccumulator:
    events = EventAccumulator(str(log_dir), size_guidance={"scalars": 0, "images": 0})
    events.Reload()
    return events


CASES: dict[str, tuple[Callable[[], Trainer], set[str], set[str]]] = {
    # name: (trainer factory, models trained, logged loss parts)
    "reconstruction": (
        lambda: ReconstructionTrainer(batch_size=4, steps_per_run=3),
        {"encoder", "decoder"},
        {"loss"},
    ),
    "dynamics": (
        lambda: DynamicsTrainer(batch_size=4, sequence_length=4, steps_per_run=3, image_interval=0),
        {"dynamics"},
        {"loss", "latent", "frame"},
    ),
    "vae": (
        lambda: VAETrainer(encoder="vae_encoder", batch_size=4, steps_per_run=3, image_interval=0),
        {"vae_encoder", "decoder"},
        {"loss", "reconstruction", "kl"},
    ),
    "ppo": (
        lambda: PPOTrainer(buffer="experience", rollout_length=16, minibatch_size=8, epochs=2),
        {"policy"},
        {"loss", "policy_loss", "value_loss", "entropy", "approx_kl", "clip_fraction"},
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_run_changes_the_trained_models_only_and_logs_its_loss_parts(
    case: str, tmp_path: Path
) -> None:
    factory, trained, parts = CASES[case]
    models = small_models(vae=True)
    buffer = SequentialBuffer(capacity=64)
    fill(models, buffer, 24)
    trainer = factory()
    writer = bind(trainer, models, buffer, tmp_path)
    before = snapshot(models)
    flags = {
        name: [p.requires_grad for p in models.training_module(name).parameters()]
        for name in models.names
    }
    assert trainer.is_ready()
    assert trainer.run()
    writer.close()
    for name in models.names:
        module = models.training_module(name)
        assert changed(before[name], module) == (name in trained), name
        if name not in trained:  # no stale gradient for another trainer's optimizer to apply
            assert all(p.grad is None for p in module.parameters()), name
        assert models._current.models[name].version == (1 if name in trained else 0)
        assert [p.requires_grad for p in module.parameters()] == flags[name]
    events = read_scalars(tmp_path / "tb")
    for part in parts:
        values = [e.value for e in events.Scalars(f"training/job/{part}")]
        assert len(values) == trainer.steps_per_run, part
        assert all(torch.isfinite(torch.tensor(values))), part


def test_dynamics_and_vae_log_image_panels(tmp_path: Path) -> None:
    models = small_models(vae=True)
    buffer = SequentialBuffer(capacity=64)
    fill(models, buffer, 16)
    for trainer in (
        DynamicsTrainer(batch_size=4, sequence_length=4, steps_per_run=1, image_interval=0),
        VAETrainer(encoder="vae_encoder", batch_size=4, steps_per_run=1, image_interval=0),
    ):
        writer = bind(trainer, models, buffer, tmp_path / type(trainer).__name__)
        trainer.run()
        writer.close()
    assert read_scalars(tmp_path / "DynamicsTrainer" / "tb").Tags()["images"] == [
        "images/world_model"
    ]
    assert read_scalars(tmp_path / "VAETrainer" / "tb").Tags()["images"] == ["images/vae"]


class CachingAdam(torch.optim.Adam):
    """A subclass that keeps its own parameter list: not known to be safe to rebind."""

    def __init__(self, params: list[nn.Parameter], lr: float) -> None:
        self.cached = list(params)
        super().__init__(self.cached, lr=lr)

    @torch.no_grad()
    def step(self, closure: object = None) -> None:  # type: ignore[override]
        for param in self.cached:
            if param.grad is not None:
                param.add_(param.grad.sign(), alpha=-self.param_groups[0]["lr"])


class CachingReconstruction(ReconstructionTrainer):
    def configure_optimizer(self, parameters: Iterable[nn.Parameter]) -> torch.optim.Optimizer:
        return CachingAdam(list(parameters), lr=self.lr)


def test_a_trainer_with_its_own_optimizer_never_steps_the_published_copies(
    tmp_path: Path,
) -> None:
    """Before: an optimizer with its own list kept stepping the inference copy after a sync."""
    models = small_models()
    buffer = SequentialBuffer(capacity=64)
    fill(models, buffer, 24)
    trainer = CachingReconstruction(batch_size=4, steps_per_run=2, min_new_steps=0)
    writer = bind(trainer, models, buffer, tmp_path)
    for _ in range(3):
        assert trainer.run()
        published = {
            name: [p.clone() for p in models._current.models[name].module.parameters()]
            for name in ("encoder", "decoder")
        }
        trainer._optimizer_step()  # a step after the publication
        for name, before in published.items():
            after = models._current.models[name].module.parameters()
            assert all(torch.equal(a, b) for a, b in zip(before, after)), name
        assert isinstance(trainer.optimizer, CachingAdam)
        owned = {
            p for name in ("encoder", "decoder") for p in models.training_module(name).parameters()
        }
        assert set(trainer.optimizer.cached) <= owned, "the rebuilt optimizer caches the new copies"
    assert trainer._optimizer.rebuilds == 3
    writer.close()


def test_a_layer_frozen_at_the_start_and_unfrozen_later_is_trained(tmp_path: Path) -> None:
    """Before: the optimizer held only the parameters trainable at set-up."""
    models = small_models()
    head = models.training_module("encoder").head
    head.requires_grad_(False)
    buffer = SequentialBuffer(capacity=64)
    fill(models, buffer, 24)
    trainer = ReconstructionTrainer(batch_size=4, steps_per_run=2, min_new_steps=0)
    writer = bind(trainer, models, buffer, tmp_path)
    frozen = [p.clone() for p in models.training_module("encoder").head.parameters()]
    assert trainer.run()
    now = models.training_module("encoder").head
    assert all(torch.equal(a, b) for a, b in zip(frozen, now.parameters())), "frozen: unchanged"
    now.requires_grad_(True)  # the trainer's own decision, e.g. after a warm-up
    assert trainer.run()
    later = models.training_module("encoder").head
    assert not all(torch.equal(a, b) for a, b in zip(frozen, later.parameters())), "now trained"
    writer.close()
