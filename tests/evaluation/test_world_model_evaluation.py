"""The world-model evaluation scores known models as it should: a copier 1, an oracle 0."""

from __future__ import annotations

import torch
from lightning_fabric import Fabric
from torch import nn

from ami.evaluation import WorldModelEvaluation
from ami.models import ModelGate

SHAPE = (3, 4, 4)


def next_frame(frame: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
    """The toy world: the picture scrolls by the action's number of columns."""
    return torch.roll(frame, shifts=int(action[0]), dims=-1)


class Oracle(nn.Module):
    """Knows the toy world's rule: the next latent exactly."""

    def __init__(self, copy: bool = False) -> None:
        super().__init__()
        self.copy = copy
        self.scale = nn.Parameter(torch.ones(()))

    def forward(
        self, latent: torch.Tensor, action: torch.Tensor, hidden: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if self.copy:
            return latent * self.scale, hidden
        frames = latent.unflatten(1, SHAPE)
        rolled = torch.stack([next_frame(f, a) for f, a in zip(frames, action, strict=True)])
        return rolled.flatten(1) * self.scale, hidden

    def initial_hidden(
        self, batch_size: int, device: torch.device | str | None = None
    ) -> torch.Tensor:
        return torch.zeros(batch_size, 1, device=device)


class PoseEncoder(nn.Module):
    """The latent: the frame's pixels, whose first row holds the pose (see make_steps)."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return frames.flatten(1) * self.scale


def evaluation(dynamics: nn.Module, **kwargs: object) -> WorldModelEvaluation:
    evaluation = WorldModelEvaluation(
        period=10,
        length=8,
        keep=1000,
        sequence_length=8,
        **kwargs,  # type: ignore[arg-type]
    )
    gate = ModelGate(
        {"encoder": PoseEncoder(), "decoder": nn.Unflatten(1, SHAPE), "dynamics": dynamics}
    )
    evaluation.bind(gate, Fabric(accelerator="cpu", devices=1))
    return evaluation


def make_steps(count: int, seed: int = 0) -> list[dict[str, torch.Tensor]]:
    """A walk through the toy world; the frame's first row encodes the true pose."""
    generator = torch.Generator().manual_seed(seed)
    frame = torch.rand(SHAPE, generator=generator)
    steps = []
    for _ in range(count):
        action = torch.randint(0, 3, (1,), generator=generator)
        pose = torch.rand(4, generator=generator)
        frame = frame.clone()
        frame[0, 0] = pose  # the latent holds the pose linearly
        steps.append({"image": frame, "action": action, "truth/pose": pose})
        frame = next_frame(frame, action)
    return steps


def feed(evaluation: WorldModelEvaluation, steps: list[dict[str, torch.Tensor]]) -> None:
    evaluation.hold_out.split(steps, [0] * len(steps), first_index=0)


def never() -> bool:
    return False


def test_a_model_that_copies_the_frame_scores_one_against_copying() -> None:
    copier = evaluation(Oracle(copy=True))
    feed(copier, make_steps(400))

    results = copier.evaluate(400, never)

    assert abs(results["prediction_vs_copy"] - 1.0) < 1e-3
    assert results["copy_error"] > 0


def test_a_model_that_knows_the_rule_predicts_better_than_copying() -> None:
    oracle = evaluation(Oracle())
    feed(oracle, make_steps(400))

    results = oracle.evaluate(400, never)

    # Only the pose row, drawn afresh each step, is unpredictable.
    assert results["prediction_vs_copy"] < 0.5


def test_only_the_recent_blocks_are_scored_but_every_kept_frame_is_probed() -> None:
    oracle = evaluation(Oracle(), recent_steps=30)
    feed(oracle, make_steps(400))

    results = oracle.evaluate(400, never)

    assert results["held_out_steps"] == 320  # 8 of every 10 steps
    assert results["pairs"] == 3 * 7  # the blocks ending at 379, 389 and 399


def test_the_probe_finds_a_pose_the_latent_holds_linearly() -> None:
    oracle = evaluation(Oracle())
    feed(oracle, make_steps(1000))

    results = oracle.evaluate(1000, never)

    assert results["probe_r2/position"] > 0.99
    assert results["probe_r2/heading"] > 0.99


def test_without_a_true_pose_there_is_no_probe() -> None:
    oracle = evaluation(Oracle())
    feed(oracle, [{k: v for k, v in step.items() if k != "truth/pose"} for step in make_steps(400)])

    results = oracle.evaluate(400, never)

    assert "prediction_vs_copy" in results
    assert not any(key.startswith("probe_r2") for key in results)


def test_an_interrupted_evaluation_reports_nothing_and_nothing_held_out_is_empty() -> None:
    oracle = evaluation(Oracle())
    assert oracle.evaluate(0, never) == {}
    feed(oracle, make_steps(100))

    assert oracle.evaluate(100, lambda: True) == {}


def test_the_models_are_back_in_training_mode_afterwards() -> None:
    oracle = evaluation(Oracle())
    feed(oracle, make_steps(100))

    oracle.evaluate(100, never)

    assert all(oracle.models.training_module(name).training for name in oracle.reads)
