"""One latent from several modalities at once, and every modality back from it.

A world that sees and hears (``interaction.audio.enabled=true``) observes a mapping
``{"image": (3, H, W), "audio": (channels, n_mels, frames)}``. A latent learnt from both
must hold what each modality alone would miss (a mover behind the agent is heard, not
seen), so the encoder runs one sub-encoder per modality, concatenates their features and
mixes them into one latent of the preset's size; the decoder runs one sub-decoder per
modality from that single latent, so every modality's reconstruction error reaches the
whole shared latent.

The sub-networks are the conv stacks of :mod:`ami.models.nets.image`. A spectrogram is
laid out like an image (bands along H, time along W), and those stacks already take
odd sides: each stride-2 conv floors (``47 -> 23 -> 11 -> 5 -> 2`` frames) and the
decoder's ``output_padding`` adds back exactly the frame the floor dropped, so the
reconstruction has the spectrogram's exact shape with no padding to crop or
interpolation to blur it.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn
from typing_extensions import override


def _feature_size(role: str, modality: str, module: nn.Module) -> int:
    """The sub-network's ``latent_dim``: its output size (encoder) or input size (decoder)."""
    size = getattr(module, "latent_dim", None)
    if not isinstance(size, int) or size < 1:
        raise ValueError(
            f"{role}[{modality!r}] is a {type(module).__name__} without a positive int "
            "latent_dim; expected an ImageEncoder/ImageDecoder, VectorEncoder/VectorDecoder "
            "or another module that declares its latent size"
        )
    return size


def _checked_modalities(role: str, modules: Mapping[str, nn.Module]) -> tuple[str, ...]:
    if not modules:
        raise ValueError(f"{role} needs at least one modality, got none")
    names = tuple(modules)
    bad = [name for name in names if not isinstance(name, str) or not name or "." in name]
    if bad:
        raise ValueError(f"{role}: modality names must be non-empty strings without '.', got {bad}")
    return names


class MultimodalEncoder(nn.Module):
    """Observations ``{modality: (B, ...)}`` -> one latent ``(B, latent_dim)``.

    The sub-encoders' features are concatenated in the order given (part of the
    parameters' meaning, so it is fixed at construction), passed through a SiLU (a linear
    layer straight after each sub-encoder's linear head would collapse into one) and a
    linear layer to ``latent_dim``.

    Args:
        encoders: One encoder per modality; each declares its output size as
            ``latent_dim``.
        latent_dim: Size of the fused latent.
    """

    def __init__(self, encoders: Mapping[str, nn.Module], latent_dim: int) -> None:
        super().__init__()
        self.modalities = _checked_modalities("MultimodalEncoder", encoders)
        if isinstance(latent_dim, bool) or not isinstance(latent_dim, int) or latent_dim < 1:
            raise ValueError(
                f"MultimodalEncoder: latent_dim must be a positive int, got {latent_dim!r}"
            )
        self.latent_dim = latent_dim
        self.encoders = nn.ModuleDict(dict(encoders))
        features = sum(_feature_size("encoders", m, encoders[m]) for m in self.modalities)
        self.fuse = nn.Sequential(nn.SiLU(), nn.Linear(features, latent_dim))

    @override
    def forward(self, observations: Mapping[str, Tensor]) -> Tensor:
        """Encode a batch of observations of every modality.

        Args:
            observations: Modality -> batched tensor, each as its sub-encoder takes it;
                entries for other modalities are ignored (a world may observe more).

        Returns:
            (B, latent_dim).

        Raises:
            ValueError: If a modality is missing or the batch sizes differ.
        """
        missing = [m for m in self.modalities if m not in observations]
        if missing:
            raise ValueError(
                f"MultimodalEncoder encodes {list(self.modalities)}, but the observations "
                f"lack {missing} (they hold {sorted(observations)})"
            )
        sizes = {m: int(observations[m].shape[0]) for m in self.modalities}
        if len(set(sizes.values())) > 1:
            raise ValueError(f"MultimodalEncoder: the modalities' batch sizes differ: {sizes}")
        features = [self.encoders[m](observations[m]) for m in self.modalities]
        latent: Tensor = self.fuse(torch.cat(features, dim=1))
        return latent


class MultimodalDecoder(nn.Module):
    """One latent ``(B, latent_dim)`` -> ``{modality: reconstruction}``.

    Each sub-decoder reads the whole latent; with the image decoders each output is a
    sigmoid in [0, 1] of its modality's exact shape.

    Args:
        decoders: One decoder per modality, all taking the same ``latent_dim``.
    """

    def __init__(self, decoders: Mapping[str, nn.Module]) -> None:
        super().__init__()
        self.modalities = _checked_modalities("MultimodalDecoder", decoders)
        sizes = {m: _feature_size("decoders", m, decoders[m]) for m in self.modalities}
        if len(set(sizes.values())) > 1:
            raise ValueError(
                f"MultimodalDecoder: every decoder must read one latent size, got {sizes}"
            )
        self.latent_dim = next(iter(sizes.values()))
        self.decoders = nn.ModuleDict(dict(decoders))

    @override
    def forward(self, latent: Tensor) -> dict[str, Tensor]:
        """Decode a batch of latents into every modality.

        Args:
            latent: (B, latent_dim).

        Returns:
            Modality -> (B, ...) reconstruction, in the order given at construction.
        """
        if latent.dim() != 2 or latent.shape[1] != self.latent_dim:
            raise ValueError(
                f"MultimodalDecoder: expected latents of shape (B, {self.latent_dim}), "
                f"got {tuple(latent.shape)}"
            )
        return {m: self.decoders[m](latent) for m in self.modalities}
