"""Does the world model know its world? Prediction against copying, and a pose probe."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn
from typing_extensions import override

from ami.config_checks import whole_number
from ami.evaluation.evaluation import Evaluation
from ami.evaluation.held_out import HeldOutStep
from ami.evaluation.probe import ridge_r2
from ami.interaction.spaces import IMAGE, TRUTH_PREFIX
from ami.models.nets import ForwardDynamics


class WorldModelEvaluation(Evaluation):
    """Two numbers a reviewer asks of a world model, on held-out experience.

    - ``prediction_vs_copy``: the forward model's next-frame error (unrolled from a zero
      hidden state over each held-out block, as :class:`~ami.trainers.DynamicsTrainer`
      trains it, and decoded to pixels) over the error of "the next frame is the current
      one", on the blocks of the last ``recent_steps`` steps. Below 1 only if the model
      learnt how the world moves; copying is hard to beat when little moves.
    - ``probe_r2/position`` and ``probe_r2/heading``: a ridge probe from the encoder's
      latent of every kept held-out frame to the world's true pose (``truth/pose``:
      ``x, y`` as fractions of the map, then ``cos, sin`` of the heading), fitted on the
      earliest 80% and scored on the rest (:func:`~ami.evaluation.probe.ridge_r2`).
      Only for worlds that tell their pose (the built-in one).

    Also charted: ``prediction_error``, ``copy_error``, ``pairs`` (frame pairs scored)
    and ``held_out_steps`` (frames kept).

    Args:
        encoder, decoder, dynamics: Model names.
        modality: The observation entry the models read.
        truth: The ``truth/`` entry the probe predicts; None: no probe.
        recent_steps: Steps back from the newest that count as recent (600: the last
            minute at 10 Hz).
        sequence_length: Longest unroll (the dynamics trainer's ``sequence_length``).
        withhold_from, period, length, keep, every: See :class:`Evaluation`.
    """

    def __init__(
        self,
        encoder: str = "encoder",
        decoder: str = "decoder",
        dynamics: str = "dynamics",
        modality: str = IMAGE,
        truth: str | None = "pose",
        recent_steps: int = 600,
        sequence_length: int = 16,
        withhold_from: Sequence[str] = ("experience",),
        period: int = 160,
        length: int = 16,
        keep: int = 1024,
        every: float = 60.0,
    ) -> None:
        self.truth_key = None if truth is None else TRUTH_PREFIX + truth
        keys = [modality, "action"] + ([] if self.truth_key is None else [self.truth_key])
        super().__init__(withhold_from, period, length, keep, every, keys)
        self.encoder_name, self.decoder_name, self.dynamics_name = encoder, decoder, dynamics
        self.modality = modality
        self.recent_steps = whole_number("evaluation.recent_steps", recent_steps)
        whole_number("evaluation.sequence_length", sequence_length, minimum=2)
        self.sequence_length = sequence_length

    @property
    @override
    def reads(self) -> tuple[str, ...]:
        return (self.encoder_name, self.decoder_name, self.dynamics_name)

    @property
    @override
    def modalities(self) -> tuple[str, ...]:
        return (self.modality,)

    @override
    def evaluate(self, steps_taken: int, interrupted: Callable[[], bool]) -> dict[str, float]:
        if not self.hold_out.steps:
            return {}
        encoder = self.models.training_module(self.encoder_name)
        decoder = self.models.training_module(self.decoder_name)
        dynamics = cast(ForwardDynamics, self.models.training_module(self.dynamics_name))
        recent_from = steps_taken - self.recent_steps
        latents: list[torch.Tensor] = []
        truths: list[torch.Tensor] = []
        prediction_sum = copy_sum = 0.0
        pairs = 0
        with torch.no_grad(), _eval_mode(encoder, decoder, dynamics), self.fabric.autocast():
            for chunk in self._chunks():
                if interrupted():
                    return {}
                frames = self._stack(chunk, self.modality).float()
                latent = encoder(frames).float()
                latents.append(latent.cpu())
                if self.truth_key is not None and self.truth_key in chunk[0].data:
                    truths.append(self._stack(chunk, self.truth_key).float().cpu())
                if len(chunk) < 2 or chunk[-1].index < recent_from:
                    continue
                actions = self._stack(chunk, "action")
                hidden = dynamics.initial_hidden(1, device=frames.device)
                predictions = []
                for t in range(len(chunk) - 1):
                    predicted, hidden = dynamics(latent[t : t + 1], actions[t : t + 1], hidden)
                    predictions.append(predicted)
                decoded = decoder(torch.cat(predictions)).float()
                following = frames[1:]
                count = len(chunk) - 1
                prediction_sum += float(F.mse_loss(decoded, following)) * count
                copy_sum += float(F.mse_loss(frames[:-1], following)) * count
                pairs += count
        results: dict[str, float] = {"held_out_steps": float(len(self.hold_out.steps))}
        if pairs:
            results["pairs"] = float(pairs)
            results["prediction_error"] = prediction_sum / pairs
            results["copy_error"] = copy_sum / pairs
            if copy_sum > 0:
                results["prediction_vs_copy"] = prediction_sum / copy_sum
        if truths and len(truths) == len(latents):
            features, targets = torch.cat(latents), torch.cat(truths)
            for name, columns in (("position", slice(0, 2)), ("heading", slice(2, 4))):
                if targets.shape[1] >= columns.stop:
                    score = ridge_r2(features, targets[:, columns])
                    if score is not None:
                        results[f"probe_r2/{name}"] = score
        return results

    def _chunks(self) -> Iterator[list[HeldOutStep]]:
        """Runs of consecutive held-out steps, cut to at most ``sequence_length``."""
        for run in self.hold_out.runs():
            for start in range(0, len(run), self.sequence_length):
                yield run[start : start + self.sequence_length]

    def _stack(self, chunk: Sequence[HeldOutStep], key: str) -> torch.Tensor:
        return torch.stack([step.data[key] for step in chunk]).to(self.fabric.device)


@contextmanager
def _eval_mode(*modules: nn.Module) -> Iterator[None]:
    """Inference behaviour (dropout off, norms frozen) inside, each module's mode after."""
    modes = [module.training for module in modules]
    for module in modules:
        module.eval()
    try:
        yield
    finally:
        for module, mode in zip(modules, modes, strict=True):
            module.train(mode)
