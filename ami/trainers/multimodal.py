"""Representation learning from several modalities: one latent that reconstructs them all."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from typing_extensions import override

from ami.interaction.io.spectrogram import AUDIO
from ami.interaction.spaces import IMAGE
from ami.trainers.trainer import Trainer


def checked_modalities(modalities: Sequence[object]) -> tuple[str, ...]:
    """The modalities as distinct names, or a ValueError saying what is accepted."""
    if isinstance(modalities, str):
        raise ValueError(
            f"trainer MultimodalReconstructionTrainer: modalities={modalities!r}: expected a "
            "list of modality names, e.g. [image, audio]"
        )
    names = list(modalities)
    if not names or any(not isinstance(name, str) or not name for name in names):
        raise ValueError(
            f"trainer MultimodalReconstructionTrainer: modalities={names!r}: expected one or "
            "more modality names, e.g. [image, audio]"
        )
    if len(set(names)) != len(names):
        raise ValueError(
            f"trainer MultimodalReconstructionTrainer: modalities={names!r} names one twice"
        )
    return tuple(str(name) for name in names)


def checked_weights(
    modalities: Sequence[str], weights: Mapping[str, object] | None
) -> dict[str, float]:
    """Each modality's weight in the loss: 1 unless ``weights`` says otherwise.

    Raises:
        ValueError: For a weight of an unknown modality, a negative or non-finite
            weight, or weights that are all zero (nothing would be learnt).
    """
    chosen = {modality: 1.0 for modality in modalities}
    for modality, weight in (weights or {}).items():
        key = f"trainer MultimodalReconstructionTrainer: weights.{modality}"
        if modality not in chosen:
            raise ValueError(f"{key}: not one of its modalities {list(modalities)}")
        if (
            isinstance(weight, bool)
            or not isinstance(weight, int | float)
            or not math.isfinite(weight)
            or weight < 0
        ):
            raise ValueError(f"{key}={weight!r}: expected a finite number >= 0")
        chosen[modality] = float(weight)
    if not any(chosen.values()):
        raise ValueError(
            f"trainer MultimodalReconstructionTrainer: weights={chosen} are all 0; "
            "at least one modality must count"
        )
    return chosen


class MultimodalReconstructionTrainer(Trainer):
    """Trains a multimodal encoder and decoder to reproduce every modality from one latent.

    The optimised loss is the weighted sum of each modality's mean squared error, each
    a mean over its own values, so a small spectrogram counts as much as a large frame
    (weight 1 each) however many values it has::

        loss = sum(weights[m] * mse(reconstruction[m], observation[m]) for m in modalities)

    Each part is logged as ``loss/<modality>`` (``training/<trainer>/loss/audio``),
    unweighted, so runs with different weights compare by the same numbers.

    Args:
        encoder: Name of the :class:`~ami.models.nets.MultimodalEncoder` model.
        decoder: Name of the :class:`~ami.models.nets.MultimodalDecoder` model.
        modalities: The observation entries it reconstructs (record keys); the world
            must observe, and the buffer store, each.
        weights: Modality -> weight in the loss; a modality not named weighs 1; None:
            all 1.
        **kwargs: See :class:`~ami.trainers.trainer.Trainer`.
    """

    def __init__(
        self,
        encoder: str = "encoder",
        decoder: str = "decoder",
        modalities: Sequence[str] = (IMAGE, AUDIO),
        weights: Mapping[str, float] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(trains=[encoder, decoder], **kwargs)
        self.modalities = checked_modalities(modalities)
        self.weights = checked_weights(self.modalities, weights)
        self.encoder_name = encoder
        self.decoder_name = decoder

    @override
    def compute_loss(self, batch: Mapping[str, torch.Tensor]) -> Mapping[str, torch.Tensor]:
        missing = [modality for modality in self.modalities if modality not in batch]
        if missing:
            raise KeyError(
                f"trainer {self.name}: the batch lacks {missing} (it holds {sorted(batch)}); "
                f"add them to buffer {self.buffer_name!r}'s keys"
            )
        observations = {modality: batch[modality] for modality in self.modalities}
        latent = self.module(self.encoder_name)(observations)
        reconstructions = self.module(self.decoder_name)(latent)
        parts = {
            modality: F.mse_loss(reconstructions[modality].float(), observations[modality].float())
            for modality in self.modalities
        }
        total = torch.stack([self.weights[m] * part for m, part in parts.items()]).sum()
        return {"loss": total, **{f"loss/{modality}": part for modality, part in parts.items()}}
