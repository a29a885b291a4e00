"""MultimodalReconstructionTrainer: one loss over image and sound, each part charted."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_dir
from lightning_fabric import Fabric

from ami.data import SequentialBuffer
from ami.experiment import build
from ami.experiment_checks import ConfigError
from ami.metrics import EventWriter
from ami.models import ModelGate
from ami.models.nets import build_multimodal_decoder, build_multimodal_encoder
from ami.reports.event_reading import read_events
from ami.system import SystemControl
from ami.trainers import MultimodalReconstructionTrainer

CONF = Path(__file__).resolve().parents[2] / "conf"
IMAGE_SHAPE = (3, 16, 16)
AUDIO_SHAPE = (2, 16, 15)


def models() -> ModelGate:
    torch.manual_seed(0)
    return ModelGate(
        {
            "encoder": build_multimodal_encoder("small", IMAGE_SHAPE, audio_shape=AUDIO_SHAPE),
            "decoder": build_multimodal_decoder("small", IMAGE_SHAPE, audio_shape=AUDIO_SHAPE),
        }
    )


def filled_buffer(steps: int = 24) -> SequentialBuffer:
    buffer = SequentialBuffer(capacity=64, keys=["image", "audio", "action"])
    generator = torch.Generator().manual_seed(1)
    buffer.extend(
        {
            "image": torch.rand(IMAGE_SHAPE, generator=generator),
            "audio": torch.rand(AUDIO_SHAPE, generator=generator) * 0.5,
            "action": torch.zeros(5, dtype=torch.long),
        }
        for _ in range(steps)
    )
    return buffer


def bound(
    trainer: MultimodalReconstructionTrainer, gate: ModelGate, tmp_path: Path
) -> tuple[EventWriter, SequentialBuffer]:
    buffer = filled_buffer()
    writer = EventWriter(tmp_path / "tb")
    control = SystemControl().handle_for("training")
    fabric = Fabric(accelerator="cpu", devices=1)
    trainer.bind("representation", gate, {buffer.shared_name: buffer}, fabric, control, writer)
    trainer.setup()
    return writer, buffer


def test_a_run_trains_both_nets_and_charts_the_loss_and_each_modality_s_part(
    tmp_path: Path,
) -> None:
    gate = models()
    trainer = MultimodalReconstructionTrainer(batch_size=4, steps_per_run=3)
    assert trainer.modalities == ("image", "audio")
    writer, _ = bound(trainer, gate, tmp_path)
    before = {
        name: [p.clone() for p in gate.training_module(name).parameters()] for name in gate.names
    }
    assert trainer.is_ready() and trainer.run()
    writer.close()
    for name in ("encoder", "decoder"):
        after = gate.training_module(name).parameters()
        assert any(not torch.equal(a, b) for a, b in zip(before[name], after)), name
    scalars = read_events(tmp_path / "tb").scalars
    for part in ("loss", "loss/image", "loss/audio"):
        series = scalars[f"training/representation/{part}"]
        assert len(series) == 3 and torch.isfinite(torch.tensor(series.values)).all(), part
    total = scalars["training/representation/loss"].values
    parts = scalars["training/representation/loss/image"].values + (
        scalars["training/representation/loss/audio"].values
    )
    assert total == pytest.approx(parts, rel=1e-5)  # weights 1: the loss is their sum


def test_the_loss_is_the_weighted_sum_of_unweighted_per_modality_errors(tmp_path: Path) -> None:
    gate = models()
    trainer = MultimodalReconstructionTrainer(
        batch_size=4, steps_per_run=1, weights={"image": 2.0, "audio": 0.5}
    )
    writer, buffer = bound(trainer, gate, tmp_path)
    writer.close()
    batch = buffer.sample(4)
    with torch.no_grad():
        losses = trainer.compute_loss(batch)
        out = gate.training_module("decoder")(gate.training_module("encoder")(batch))
    image = F.mse_loss(out["image"], batch["image"])
    audio = F.mse_loss(out["audio"], batch["audio"])
    assert float(losses["loss/image"]) == pytest.approx(float(image), rel=1e-5)
    assert float(losses["loss/audio"]) == pytest.approx(float(audio), rel=1e-5)
    assert float(losses["loss"]) == pytest.approx(2.0 * float(image) + 0.5 * float(audio), rel=1e-5)
    assert set(losses) == {"loss", "loss/image", "loss/audio"}


def test_a_batch_without_a_modality_names_it_and_the_buffer(tmp_path: Path) -> None:
    gate = models()
    trainer = MultimodalReconstructionTrainer(batch_size=4, steps_per_run=1)
    writer, buffer = bound(trainer, gate, tmp_path)
    writer.close()
    batch = dict(buffer.sample(4))
    del batch["audio"]
    with pytest.raises(KeyError, match=r"lacks \['audio'\].*buffer 'experience'"):
        trainer.compute_loss(batch)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"modalities": []}, r"modalities=\[\]: expected one or more"),
        ({"modalities": "image"}, "modalities='image': expected a list"),
        ({"modalities": ["image", "image"]}, "names one twice"),
        ({"weights": {"sound": 1.0}}, r"weights\.sound: not one of its modalities"),
        ({"weights": {"audio": -1.0}}, r"weights\.audio=-1\.0: expected a finite number >= 0"),
        ({"weights": {"audio": float("nan")}}, r"weights\.audio=nan"),
        ({"weights": {"image": 0, "audio": 0.0}}, "are all 0"),
    ],
)
def test_bad_modalities_or_weights_name_what_is_accepted(
    kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        MultimodalReconstructionTrainer(**kwargs)


@pytest.mark.usefixtures("keep_main_thread_name")
def test_the_experiment_refuses_a_buffer_that_does_not_store_the_sound(tmp_path: Path) -> None:
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(
            "launch",
            overrides=[
                "experiment=audio_visual",
                "buffer.keys=[image,action]",
                "~buffer.dtypes.audio",
                "web_api=none",
                "fabric.accelerator=cpu",
            ],
        )
    with pytest.raises(ConfigError, match=r"'audio', but its buffer 'experience' stores only"):
        build(cfg, tmp_path)
