"""Forward dynamics: predict what comes next, from the latent, the action and memory."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

import torch
import torch.nn.functional as F
from typing_extensions import override

from ami.interaction.spaces import IMAGE
from ami.metrics.panels import labelled_strip
from ami.models.nets import ForwardDynamics, disagreement
from ami.throttle import Throttle
from ami.trainers.trainer import Trainer


class DynamicsTrainer(Trainer):
    """Trains the forward model on sequences of consecutive steps.

    Frames are encoded by the (frozen) encoder; the dynamics model is unrolled from a
    zero hidden state over the sequence, predicting each next latent from the current
    latent, the action taken and its hidden state. Two losses:

    - ``latent``: error against the encoder's next latent, the quantity the
      curiosity reward measures at inference time;
    - ``frame``: error of the decoded prediction against the real next frame, in
      pixels. Unlike latents, pixels do not drift while the encoder trains, so this is
      the world model's prediction loss to compare over a run.

    An ensemble (a dynamics model with ``predict_members``,
    :class:`~ami.models.nets.EnsembleDynamics`) is trained member by member: the
    optimised ``loss`` is the sum over members of each one's own latent and frame
    losses, so that each member learns to predict on its own (were only the mean
    trained, the members could disagree forever while their mean was right, and the
    disagreement would measure nothing). ``latent`` and ``frame`` are charted for the
    members' mean prediction, comparable with a single model's; ``loss`` (and the
    progress line's figure) is ``members`` times larger than a single model's would be.
    A third part, ``disagreement``, is the variance across members averaged over the
    batch's latent entries: the curious agent's ``reward=disagreement`` on the
    training data. Each member's frames go through the decoder, so a step decodes
    ``members + 1`` times as many frames as with a single model.

    After each run (at most every ``image_interval`` seconds) it logs the image panel
    ``images/world_model``: left to right, the current observation, its
    reconstruction, the predicted next frame and the real next frame, each captioned
    (:func:`~ami.metrics.labelled_strip`).

    Args:
        encoder, decoder, dynamics: Model names.
        frame_weight: Weight of the pixel loss in the optimised loss.
        image_interval: Seconds between image panels.
        modality: The observation entry it predicts (a record key).
        **kwargs: See :class:`~ami.trainers.trainer.Trainer`; ``sequence_length``
            must be at least 2.
    """

    def __init__(
        self,
        encoder: str = "encoder",
        decoder: str = "decoder",
        dynamics: str = "dynamics",
        frame_weight: float = 1.0,
        image_interval: float = 20.0,
        modality: str = IMAGE,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("sequence_length", 8)
        super().__init__(trains=[dynamics], reads=[encoder, decoder], **kwargs)
        if self.sequence_length < 2:
            raise ValueError(
                f"DynamicsTrainer needs sequence_length >= 2 (a step and its successor), "
                f"got {self.sequence_length}"
            )
        self.modality = modality
        self.modalities = (modality,)
        self.encoder_name = encoder
        self.decoder_name = decoder
        self.dynamics_name = dynamics
        self.frame_weight = frame_weight
        self._images = Throttle(image_interval)
        self._panels = torch.Generator().manual_seed(0)  # see DataBuffer.sample_sequences

    def _unroll(self, batch: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Each member's predicted latents and the targets, for steps 1..T-1.

        Returns:
            ``(predictions, targets)``: ``(M, B, T-1, L)``, with ``M = 1`` for a
            single model, and ``(B, T-1, L)``.
        """
        observation, action = batch[self.modality], batch["action"]
        batch_size, length = observation.shape[:2]
        encoder = self.module(self.encoder_name)
        # Any module with ForwardDynamics' interface works; the cast only informs the checker.
        dynamics = cast(ForwardDynamics, self.module(self.dynamics_name))
        members = getattr(dynamics, "predict_members", None)
        with torch.no_grad():
            latents = encoder(observation.flatten(0, 1)).unflatten(0, (batch_size, length))
        hidden = dynamics.initial_hidden(batch_size, device=observation.device)
        predictions = []
        for t in range(length - 1):
            if members is None:
                predicted, hidden = dynamics(latents[:, t], action[:, t], hidden)
                predicted = predicted[None]
            else:
                predicted, hidden = members(latents[:, t], action[:, t], hidden)
            predictions.append(predicted)
        return torch.stack(predictions, dim=2), latents[:, 1:]

    @override
    def compute_loss(self, batch: Mapping[str, torch.Tensor]) -> Mapping[str, torch.Tensor]:
        predictions, target = self._unroll(batch)
        next_frames = batch[self.modality][:, 1:].flatten(0, 1)
        decoder = self.module(self.decoder_name)
        if predictions.shape[0] == 1:  # a single model
            latent_loss = F.mse_loss(predictions[0].float(), target.float())
            frame_loss = F.mse_loss(
                decoder(predictions[0].flatten(0, 1)).float(), next_frames.float()
            )
            return {
                "loss": latent_loss + self.frame_weight * frame_loss,
                "latent": latent_loss,
                "frame": frame_loss,
            }
        members = predictions.shape[0]
        predictions = predictions.float()
        # Each member's own mean squared errors, (M,): their sum keeps members apart.
        member_latent = (predictions - target.float()).square().flatten(1).mean(dim=1)
        decoded = decoder(predictions.flatten(0, 2)).float().unflatten(0, (members, -1))
        member_frame = (decoded - next_frames.float()).square().flatten(1).mean(dim=1)
        loss = (member_latent + self.frame_weight * member_frame).sum()
        with torch.no_grad():
            mean = predictions.mean(dim=0)
            latent_loss = F.mse_loss(mean, target.float())
            frame_loss = F.mse_loss(decoder(mean.flatten(0, 1)).float(), next_frames.float())
            spread = disagreement(predictions)
        return {"loss": loss, "latent": latent_loss, "frame": frame_loss, "disagreement": spread}

    @override
    def on_run_end(self) -> None:
        if not self._images.ready():
            return
        batch = self.buffer.sample_sequences(1, 2, generator=self._panels)
        if batch[self.modality].dim() != 5:  # (1, 2, C, H, W): only images make a panel
            return
        batch = {key: value.to(self.fabric.device) for key, value in batch.items()}
        with torch.no_grad(), self.fabric.autocast():
            predictions, _ = self._unroll(batch)
            decoder = self.module(self.decoder_name)
            current = batch[self.modality][0, 0]
            reconstruction = decoder(self.module(self.encoder_name)(current[None]))[0]
            prediction = decoder(predictions.mean(dim=0)[:, 0])[0]  # the members' mean
        panel = labelled_strip(
            [current, reconstruction.float(), prediction.float(), batch[self.modality][0, 1]],
            ["observation", "reconstruction", "predicted next", "real next"],
        )
        self.metrics.image("images/world_model", panel, self.global_step)
