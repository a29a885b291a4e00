"""The audio-visual nets: one latent from image and spectrogram, both back from it."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from torch import Tensor

import ami.experiment  # noqa: F401  (registers the resolvers, as scripts/launch.py does)
from ami.models.nets import (
    ImageEncoder,
    MultimodalDecoder,
    MultimodalEncoder,
    build_multimodal_decoder,
    build_multimodal_encoder,
)

CONF = Path(__file__).resolve().parents[2] / "conf"
IMAGE_SHAPE = [3, 16, 16]
AUDIO_SHAPE = [2, 16, 15]  # an odd frame count, as the world's 47
SETTINGS = {  # conf/interaction/sim.yaml's audio node: (2, 64, 47)
    "enabled": True,
    "sample_rate": 16000,
    "channels": 2,
    "n_mels": 64,
    "window_seconds": 0.5,
    "hop_seconds": 0.01,
    "fft_seconds": 0.032,
}


def observations(batch: int, seed: int = 0) -> dict[str, Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return {
        "image": torch.rand(batch, *IMAGE_SHAPE, generator=generator),
        "audio": torch.rand(batch, *AUDIO_SHAPE, generator=generator),
    }


def nets() -> tuple[MultimodalEncoder, MultimodalDecoder]:
    torch.manual_seed(0)
    return (
        build_multimodal_encoder("small", IMAGE_SHAPE, audio_shape=AUDIO_SHAPE),
        build_multimodal_decoder("small", IMAGE_SHAPE, audio_shape=AUDIO_SHAPE),
    )


def test_the_default_sound_becomes_one_latent_and_comes_back_in_its_exact_shape() -> None:
    encoder = build_multimodal_encoder("small", [3, 84, 84], audio=SETTINGS)
    decoder = build_multimodal_decoder("small", [3, 84, 84], audio=SETTINGS)
    batch = {"image": torch.rand(2, 3, 84, 84), "audio": torch.rand(2, 2, 64, 47)}
    latent = encoder(batch)
    assert latent.shape == (2, 64)
    out = decoder(latent)
    assert set(out) == {"image", "audio"}
    assert out["image"].shape == (2, 3, 84, 84)
    assert out["audio"].shape == (2, 2, 64, 47)


def test_given_settings_and_the_shape_they_make_build_the_same_nets() -> None:
    from_settings = build_multimodal_encoder("small", [3, 84, 84], audio=SETTINGS)
    from_shape = build_multimodal_encoder("small", [3, 84, 84], audio_shape=[2, 64, 47])
    assert [p.shape for p in from_settings.parameters()] == [
        p.shape for p in from_shape.parameters()
    ]


@pytest.mark.parametrize("shape", [(1, 64, 47), (2, 16, 15), (2, 64, 7), (1, 3, 2)])
def test_odd_and_short_spectrograms_are_reconstructed_in_their_exact_shape(
    shape: tuple[int, int, int],
) -> None:
    encoder = build_multimodal_encoder("small", IMAGE_SHAPE, audio_shape=list(shape))
    decoder = build_multimodal_decoder("small", IMAGE_SHAPE, audio_shape=list(shape))
    batch = {"image": torch.rand(3, *IMAGE_SHAPE), "audio": torch.rand(3, *shape)}
    assert decoder(encoder(batch))["audio"].shape == (3, *shape)


def test_the_spectrogram_gets_a_narrower_encoder_than_the_image() -> None:
    encoder, _ = nets()
    image, audio = encoder.encoders["image"], encoder.encoders["audio"]
    assert isinstance(image, ImageEncoder) and isinstance(audio, ImageEncoder)
    assert audio.in_channels == 2 and image.in_channels == 3
    assert sum(p.numel() for p in audio.parameters()) < sum(p.numel() for p in image.parameters())


def test_reconstructions_stay_in_the_unit_interval_even_for_extreme_latents() -> None:
    _, decoder = nets()
    latent = torch.randn(4, 64, generator=torch.Generator().manual_seed(3)) * 100.0
    with torch.no_grad():
        outputs = decoder(latent)
    for modality, output in outputs.items():
        assert float(output.min()) >= 0.0 and float(output.max()) <= 1.0, modality
        assert output.std() > 0, modality  # not one saturated constant


@pytest.mark.parametrize("loss_of", ["image", "audio"])
def test_each_modality_s_error_reaches_both_sub_encoders(loss_of: str) -> None:
    """The latent is shared: the sound's error also trains the image's encoder."""
    encoder, decoder = nets()
    batch = observations(4)
    out = decoder(encoder(batch))
    F.mse_loss(out[loss_of], batch[loss_of]).backward()
    for modality in ("image", "audio"):
        for name, param in encoder.encoders[modality].named_parameters():
            assert param.grad is not None and param.grad.abs().sum() > 0, f"{modality}.{name}"
    for name, param in encoder.fuse.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name


def test_a_few_optimizer_steps_lower_both_losses_on_fixed_data() -> None:
    encoder, decoder = nets()
    batch = observations(8)
    optimizer = torch.optim.Adam([*encoder.parameters(), *decoder.parameters()], lr=1e-3)

    def losses() -> dict[str, Tensor]:
        out = decoder(encoder(batch))
        return {m: F.mse_loss(out[m], batch[m]) for m in ("image", "audio")}

    with torch.no_grad():
        before = {m: float(v) for m, v in losses().items()}
    for _ in range(30):
        parts = losses()
        optimizer.zero_grad()
        (parts["image"] + parts["audio"]).backward()
        optimizer.step()
    with torch.no_grad():
        after = {m: float(v) for m, v in losses().items()}
    for modality in ("image", "audio"):
        assert after[modality] < 0.8 * before[modality], (modality, before, after)


def test_a_missing_modality_is_named() -> None:
    encoder, _ = nets()
    with pytest.raises(ValueError, match=r"lack \['audio'\].*hold \['image'\]"):
        encoder({"image": torch.rand(2, *IMAGE_SHAPE)})


def test_batches_of_different_sizes_are_refused() -> None:
    encoder, _ = nets()
    batch = observations(2)
    batch["audio"] = batch["audio"][:1]
    with pytest.raises(ValueError, match="batch sizes differ"):
        encoder(batch)


def test_a_latent_of_the_wrong_size_is_refused() -> None:
    _, decoder = nets()
    with pytest.raises(ValueError, match=r"expected latents of shape \(B, 64\)"):
        decoder(torch.rand(2, 8))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"audio_shape": AUDIO_SHAPE, "audio": SETTINGS}, "exactly one of audio_shape"),
        ({}, "exactly one of audio_shape"),
        ({"audio_shape": [2, 64]}, r"audio_shape=\[2, 64\]: expected \(channels, n_mels, frames\)"),
        ({"audio_shape": [2, 1, 47]}, "n_mels and frames must be at least 2"),
        ({"audio_shape": [2, 0, 47]}, r"audio_shape\[1\] \(n_mels\)=0"),
        ({"audio": {**SETTINGS, "n_mels": "many"}}, "interaction.audio.n_mels='many'"),
    ],
)
def test_a_bad_audio_shape_names_what_is_accepted(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build_multimodal_encoder("small", IMAGE_SHAPE, **kwargs)


def test_a_vector_observation_is_refused_as_the_image() -> None:
    with pytest.raises(ValueError, match=r"image_shape=\[4\]: the audio-visual model encodes"):
        build_multimodal_decoder("small", [4], audio_shape=AUDIO_SHAPE)


def test_the_experiment_s_models_fit_what_its_world_observes() -> None:
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("launch", overrides=["experiment=audio_visual"])
    space = instantiate(cfg.interaction.environment).observation_space()
    encoder = instantiate(cfg.model.models.encoder)
    decoder = instantiate(cfg.model.models.decoder)
    batch = {name: torch.rand(2, *space[name].shape) for name in ("image", "audio")}
    out = decoder(encoder(batch))
    for name in ("image", "audio"):
        assert out[name].shape == (2, *space[name].shape), name
