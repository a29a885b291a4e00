"""Representation learning with a variational autoencoder."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from typing_extensions import override

from ami.interaction.spaces import IMAGE
from ami.metrics.panels import labelled_strip
from ami.models.nets import kl_divergence, reparameterize
from ami.throttle import Throttle
from ami.trainers.trainer import Trainer


class VAETrainer(Trainer):
    """Trains a variational encoder and a decoder on single observations.

    The optimised loss is the negative evidence lower bound of a Gaussian pixel
    likelihood, divided by the number of pixel values so that its size (and a good
    learning rate) does not depend on the image size::

        loss = (sum of squared pixel errors + beta * KL) / (C * H * W)

    Logged parts: ``reconstruction`` (mean squared error per pixel value, comparable
    with the autoencoder's loss) and ``kl`` (nats per observation).

    After a run (at most every ``image_interval`` seconds) it logs ``images/vae``: an
    observation beside its reconstruction from the posterior mean, each captioned
    (:func:`~ami.metrics.labelled_strip`).

    Args:
        encoder: Name of the :class:`~ami.models.nets.VariationalEncoder` model.
        decoder: Name of the decoder model.
        beta: Weight of the KL term; above 1 trades detail for a smoother latent.
        image_interval: Seconds between image panels.
        modality: The observation entry it reconstructs (a record key).
        **kwargs: See :class:`~ami.trainers.trainer.Trainer`.
    """

    def __init__(
        self,
        encoder: str = "encoder",
        decoder: str = "decoder",
        beta: float = 1.0,
        image_interval: float = 20.0,
        modality: str = IMAGE,
        **kwargs: Any,
    ) -> None:
        super().__init__(trains=[encoder, decoder], **kwargs)
        self.modality = modality
        self.modalities = (modality,)
        if beta < 0:
            raise ValueError(f"beta must be >= 0, got {beta}")
        self.encoder_name = encoder
        self.decoder_name = decoder
        self.beta = beta
        self._images = Throttle(image_interval)
        self._panels = torch.Generator().manual_seed(0)  # see DataBuffer.sample_sequences

    @override
    def compute_loss(self, batch: Mapping[str, torch.Tensor]) -> Mapping[str, torch.Tensor]:
        observation = batch[self.modality]
        mean, log_var = self.module(self.encoder_name)(observation)
        latent = reparameterize(mean, log_var)
        reconstruction = self.module(self.decoder_name)(latent).float()
        squared = F.mse_loss(reconstruction, observation.float(), reduction="none")
        values_per_image = squared[0].numel()
        reconstruction_loss = squared.mean()
        kl = kl_divergence(mean.float(), log_var.float()).mean()
        return {
            "loss": reconstruction_loss + self.beta * kl / values_per_image,
            "reconstruction": reconstruction_loss,
            "kl": kl,
        }

    @override
    def on_run_end(self) -> None:
        if not self._images.ready():
            return
        sample = self.buffer.sample_sequences(1, 1, generator=self._panels)
        observation = sample[self.modality][:, 0].to(self.fabric.device)
        if observation.dim() != 4:  # (1, C, H, W): only images make a panel
            return
        with torch.no_grad(), self.fabric.autocast():
            mean, _ = self.module(self.encoder_name)(observation.float())
            reconstruction = self.module(self.decoder_name)(mean)
        panel = labelled_strip(
            [observation[0].float(), reconstruction[0].float()], ["observation", "reconstruction"]
        )
        self.metrics.image("images/vae", panel, self.global_step)
