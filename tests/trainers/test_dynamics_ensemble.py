"""DynamicsTrainer with an ensemble: each member trained on its own loss, the spread charted."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from lightning_fabric import Fabric
from runtime_parts import small_models
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from ami.data import SequentialBuffer
from ami.metrics import EventWriter
from ami.models import ModelGate
from ami.models.nets import EnsembleDynamics, ForwardDynamics, disagreement
from ami.reports.event_reading import read_events
from ami.system import SystemControl
from ami.trainers import DynamicsTrainer

CHOICES = [3, 3, 3, 2, 2]
MEMBERS = 3


def ensemble_models() -> ModelGate:
    """The small world model's encoder and decoder, and an ensemble of three forward models."""
    parts = small_models()
    torch.manual_seed(1)
    return ModelGate(
        {
            "encoder": parts.training_module("encoder"),
            "decoder": parts.training_module("decoder"),
            "dynamics": EnsembleDynamics(MEMBERS, 8, CHOICES, 16, action_embed_dim=4),
        }
    )


def filled_buffer(steps: int = 32) -> SequentialBuffer:
    buffer = SequentialBuffer(capacity=64, keys=["image", "action"])
    generator = torch.Generator().manual_seed(2)
    buffer.extend(
        {
            "image": torch.rand(3, 16, 16, generator=generator),
            "action": torch.tensor(
                [int(torch.randint(n, (), generator=generator)) for n in CHOICES]
            ),
        }
        for _ in range(steps)
    )
    return buffer


class FixedBatchTrainer(DynamicsTrainer):
    """Every optimizer step on the same batch, so that each step's effect on it shows."""

    fixed: Mapping[str, torch.Tensor]

    def sample(self) -> dict[str, torch.Tensor]:
        return dict(self.fixed)


def bound(trainer: DynamicsTrainer, gate: ModelGate, tmp_path: Path) -> EventWriter:
    buffer = filled_buffer()
    writer = EventWriter(tmp_path / "tb")
    control = SystemControl().handle_for("training")
    fabric = Fabric(accelerator="cpu", devices=1)
    trainer.bind("dynamics", gate, {buffer.shared_name: buffer}, fabric, control, writer)
    trainer.setup()
    return writer


def member_losses(gate: ModelGate, batch: Mapping[str, torch.Tensor]) -> list[float]:
    """Each member's own latent + frame loss on ``batch``, each member run on its own."""
    encoder, decoder = gate.training_module("encoder"), gate.training_module("decoder")
    ensemble = gate.training_module("dynamics")
    assert isinstance(ensemble, EnsembleDynamics)
    with torch.no_grad():
        return [float(own_loss(net, encoder, decoder, batch)) for net in ensemble.nets]


def own_loss(
    net: torch.nn.Module,
    encoder: torch.nn.Module,
    decoder: torch.nn.Module,
    batch: Mapping[str, torch.Tensor],
) -> torch.Tensor:
    """One member's loss as if it were the only forward model (frame_weight 1)."""
    assert isinstance(net, ForwardDynamics)
    images, actions = batch["image"], batch["action"]
    size, length = images.shape[:2]
    with torch.no_grad():
        latents = encoder(images.flatten(0, 1)).unflatten(0, (size, length))
    hidden = net.initial_hidden(size)
    predictions = []
    for t in range(length - 1):
        predicted, hidden = net(latents[:, t], actions[:, t], hidden)
        predictions.append(predicted)
    predicted = torch.stack(predictions, dim=1)
    frames = decoder(predicted.flatten(0, 1))
    return F.mse_loss(predicted, latents[:, 1:]) + F.mse_loss(frames, images[:, 1:].flatten(0, 1))


def test_after_a_few_steps_on_a_fixed_batch_every_members_own_loss_fell(tmp_path: Path) -> None:
    gate = ensemble_models()
    trainer = FixedBatchTrainer(batch_size=4, sequence_length=4, steps_per_run=10, lr=3e-3)
    writer = bound(trainer, gate, tmp_path)
    trainer.fixed = trainer.buffer.sample_sequences(
        4, 4, generator=torch.Generator().manual_seed(5)
    )
    before = member_losses(gate, trainer.fixed)
    assert trainer.run()
    writer.close()
    after = member_losses(gate, trainer.fixed)
    assert all(a < b for a, b in zip(after, before, strict=True)), (before, after)


def test_each_members_gradient_is_that_of_its_own_loss_alone(tmp_path: Path) -> None:
    """Members are trained independently, not only through their mean."""
    gate = ensemble_models()
    trainer = DynamicsTrainer(batch_size=4, sequence_length=4)
    writer = bound(trainer, gate, tmp_path)
    writer.close()
    batch = trainer.buffer.sample_sequences(4, 4, generator=torch.Generator().manual_seed(6))
    ensemble = gate.training_module("dynamics")
    assert isinstance(ensemble, EnsembleDynamics)
    trainer.compute_loss(batch)["loss"].backward()
    from_trainer = [[p.grad.clone() for p in net.parameters()] for net in ensemble.nets]  # type: ignore[union-attr]
    encoder, decoder = gate.training_module("encoder"), gate.training_module("decoder")
    for k, net in enumerate(ensemble.nets):
        ensemble.zero_grad(set_to_none=True)
        own_loss(net, encoder, decoder, batch).backward()
        for param, expected in zip(net.parameters(), from_trainer[k], strict=True):
            assert param.grad is not None
            torch.testing.assert_close(expected, param.grad, rtol=1e-4, atol=1e-7)


def test_latent_and_frame_are_the_mean_predictions_and_loss_is_the_members_sum(
    tmp_path: Path,
) -> None:
    gate = ensemble_models()
    trainer = DynamicsTrainer(batch_size=4, sequence_length=4)
    writer = bound(trainer, gate, tmp_path)
    writer.close()
    batch = trainer.buffer.sample_sequences(4, 4, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        losses = trainer.compute_loss(batch)
        encoder, decoder = gate.training_module("encoder"), gate.training_module("decoder")
        ensemble = gate.training_module("dynamics")
        assert isinstance(ensemble, EnsembleDynamics)
        latents = encoder(batch["image"].flatten(0, 1)).unflatten(0, (4, 4))
        hidden = ensemble.initial_hidden(4)
        steps = []
        for t in range(3):
            members, hidden = ensemble.predict_members(latents[:, t], batch["action"][:, t], hidden)
            steps.append(members)
        predictions = torch.stack(steps, dim=2)  # (M, B, T-1, L)
        mean = predictions.mean(dim=0)
        frames = batch["image"][:, 1:].flatten(0, 1)
        members_total = sum(own_loss(net, encoder, decoder, batch) for net in ensemble.nets)
    assert set(losses) == {"loss", "latent", "frame", "disagreement"}
    torch.testing.assert_close(losses["latent"], F.mse_loss(mean, latents[:, 1:]))
    torch.testing.assert_close(losses["frame"], F.mse_loss(decoder(mean.flatten(0, 1)), frames))
    torch.testing.assert_close(losses["disagreement"], disagreement(predictions))
    assert float(losses["disagreement"]) > 0
    torch.testing.assert_close(losses["loss"], members_total)


def test_a_run_charts_the_disagreement_and_the_image_panel(tmp_path: Path) -> None:
    gate = ensemble_models()
    trainer = DynamicsTrainer(batch_size=4, sequence_length=4, steps_per_run=3, image_interval=0)
    writer = bound(trainer, gate, tmp_path)
    assert trainer.is_ready() and trainer.run()
    writer.close()
    events = read_events(tmp_path / "tb")
    for part in ("loss", "latent", "frame", "disagreement"):
        series = events.scalars[f"training/dynamics/{part}"]
        assert len(series) == 3 and torch.isfinite(torch.tensor(series.values)).all(), part
    assert min(events.scalars["training/dynamics/disagreement"].values) > 0
    images = EventAccumulator(str(tmp_path / "tb"), size_guidance={"images": 0})
    images.Reload()
    assert images.Tags()["images"] == ["images/world_model"]


@pytest.mark.parametrize("members", [None, MEMBERS])
def test_only_an_ensemble_charts_a_disagreement(members: int | None, tmp_path: Path) -> None:
    gate = ensemble_models() if members else small_models()
    trainer = DynamicsTrainer(batch_size=4, sequence_length=4)
    writer = bound(trainer, gate, tmp_path)
    writer.close()
    with torch.no_grad():
        losses = trainer.compute_loss(trainer.buffer.sample_sequences(4, 4))
    assert ("disagreement" in losses) == (members is not None)
