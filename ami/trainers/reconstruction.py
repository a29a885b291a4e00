"""Representation learning: an autoencoder that compresses frames into latents."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from typing_extensions import override

from ami.interaction.spaces import IMAGE
from ami.trainers.trainer import Trainer


class ReconstructionTrainer(Trainer):
    """Trains an encoder and a decoder to reproduce single observations.

    The latent it learns is what the dynamics model predicts and what the policy
    reads, so it runs on single random steps, independent of the agent's order.

    Args:
        encoder: Name of the encoder model.
        decoder: Name of the decoder model.
        modality: The observation entry it reconstructs (a record key).
        **kwargs: See :class:`~ami.trainers.trainer.Trainer`.
    """

    def __init__(
        self,
        encoder: str = "encoder",
        decoder: str = "decoder",
        modality: str = IMAGE,
        **kwargs: Any,
    ) -> None:
        super().__init__(trains=[encoder, decoder], **kwargs)
        self.modality = modality
        self.modalities = (modality,)
        self.encoder_name = encoder
        self.decoder_name = decoder

    @override
    def compute_loss(self, batch: Mapping[str, torch.Tensor]) -> Mapping[str, torch.Tensor]:
        observation = batch[self.modality]
        latent = self.module(self.encoder_name)(observation)
        reconstruction = self.module(self.decoder_name)(latent)
        return {"loss": F.mse_loss(reconstruction.float(), observation.float())}
