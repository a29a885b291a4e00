"""PPO on hand-made trajectories: when it runs, what it optimises, what it leaves alone."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from lightning_fabric import Fabric
from runtime_parts import infer
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from ami.data import DataBuffer, RandomReplacementBuffer, SequentialBuffer
from ami.metrics import EventWriter
from ami.models import ModelGate
from ami.models.nets import MultiCategorical, PolicyValue
from ami.system import SystemControl
from ami.trainers import PPOTrainer

CHOICES = [3, 3, 3, 2, 2]


def make_policy() -> ModelGate:
    torch.manual_seed(0)
    return ModelGate({"policy": PolicyValue(8, 16, CHOICES, 32)})


def trajectory(
    policy: ModelGate, steps: int, decision: bool = True, seed: int = 0
) -> list[dict[str, torch.Tensor]]:
    """Steps acted by ``policy``; the reward is 1 exactly when category 0 chose 1."""
    generator = torch.Generator().manual_seed(seed)
    latent = torch.randn(steps, 8, generator=generator)
    hidden = torch.randn(steps, 16, generator=generator).tanh()
    logits, value = infer(policy, "policy", latent, hidden)
    distribution = MultiCategorical(logits)
    action = distribution.sample(generator)
    log_prob = distribution.log_prob(action)
    reward = (action[:, 0] == 1).float()
    return [
        {
            "latent": latent[t],
            "hidden": hidden[t],
            "action": action[t],
            "action_log_prob": log_prob[t],
            "value": value[t],
            "reward": reward[t],
            "decision": torch.tensor(decision),
        }
        for t in range(steps)
    ]


def bind(trainer: PPOTrainer, policy: ModelGate, buffer: DataBuffer, tmp_path: Path) -> EventWriter:
    writer = EventWriter(tmp_path / "tb")
    control = SystemControl().handle_for("training")
    fabric = Fabric(accelerator="cpu", devices=1)
    trainer.bind("policy", policy, {buffer.shared_name: buffer}, fabric, control, writer)
    trainer.setup()
    return writer


def choice_probability(policy: ModelGate, steps: list[dict[str, torch.Tensor]]) -> float:
    latent = torch.stack([s["latent"] for s in steps])
    hidden = torch.stack([s["hidden"] for s in steps])
    logits, _ = infer(policy, "policy", latent, hidden)
    return float(MultiCategorical(logits).probs[:, 0, 1].mean())


def test_optimizer_steps_per_run_follow_from_the_rollout() -> None:
    trainer = PPOTrainer(rollout_length=64, minibatch_size=16, epochs=3)
    assert trainer.steps_per_run == 12
    assert trainer.batch_size == 16
    with pytest.raises(ValueError, match="disagrees"):
        PPOTrainer(rollout_length=64, minibatch_size=16, epochs=3, steps_per_run=10)
    with pytest.raises(ValueError, match="minibatch_size"):
        PPOTrainer(rollout_length=8, minibatch_size=16)
    with pytest.raises(ValueError, match="batch_size"):
        PPOTrainer(batch_size=4)
    with pytest.raises(ValueError, match=r"reward_normalization='scale'.*standardize"):
        PPOTrainer(reward_normalization="scale")
    with pytest.raises(ValueError, match="reward_memory"):
        PPOTrainer(reward_memory=1.5)


def test_the_buffer_must_keep_order_and_hold_a_rollout_and_its_bootstrap(tmp_path: Path) -> None:
    policy = make_policy()
    with pytest.raises(TypeError, match="SequentialBuffer"):
        bind(
            PPOTrainer(buffer="trajectory"),
            policy,
            RandomReplacementBuffer(256, name="trajectory"),
            tmp_path,
        )
    with pytest.raises(ValueError, match="at least one more"):
        bind(
            PPOTrainer(rollout_length=16, minibatch_size=8),
            policy,
            SequentialBuffer(16, name="trajectory"),
            tmp_path,
        )


def test_a_run_waits_for_a_whole_new_rollout(tmp_path: Path) -> None:
    policy = make_policy()
    buffer = SequentialBuffer(64, name="trajectory")
    trainer = PPOTrainer(rollout_length=16, minibatch_size=8, epochs=1)
    bind(trainer, policy, buffer, tmp_path)
    steps = trajectory(policy, 40)
    buffer.extend(steps[:16])
    assert not trainer.is_ready(), "the bootstrap step is still missing"
    buffer.extend(steps[16:17])
    assert trainer.is_ready()
    assert trainer.run()
    buffer.extend(steps[17:32])
    assert not trainer.is_ready()
    buffer.extend(steps[32:33])
    assert trainer.is_ready()


@pytest.mark.parametrize("normalization", ["standardize", "return_scale", "none"])
def test_ppo_makes_rewarded_choices_likelier_without_surprise_at_first(
    tmp_path: Path, normalization: str
) -> None:
    policy = make_policy()
    buffer = SequentialBuffer(128, name="trajectory")
    trainer = PPOTrainer(
        rollout_length=64,
        minibatch_size=16,
        epochs=4,
        gamma=0.0,
        lr=3e-3,
        reward_normalization=normalization,
    )
    writer = bind(trainer, policy, buffer, tmp_path)
    steps = trajectory(policy, 65)
    buffer.extend(steps)
    before = choice_probability(policy, steps)
    assert trainer.run()
    writer.close()
    after = choice_probability(policy, steps)
    assert after > before + 0.05, (before, after)
    events = EventAccumulator(str(tmp_path / "tb"), size_guidance={"scalars": 0})
    events.Reload()
    # The first minibatch sees the policy that acted, through the stored latent and
    # hidden state: the probability ratio is exactly 1.
    assert events.Scalars("training/policy/approx_kl")[0].value == pytest.approx(0.0, abs=1e-6)
    assert events.Scalars("training/policy/clip_fraction")[0].value == 0.0
    assert len(events.Scalars("training/policy/rollout/intrinsic_reward")) == 1


def test_held_actions_train_the_value_but_not_the_policy_head(tmp_path: Path) -> None:
    policy = make_policy()
    buffer = SequentialBuffer(64, name="trajectory")
    trainer = PPOTrainer(rollout_length=32, minibatch_size=16, epochs=1)
    bind(trainer, policy, buffer, tmp_path)
    buffer.extend(trajectory(policy, 33, decision=False))
    module = policy.training_module("policy")
    assert isinstance(module, PolicyValue)
    head = [p.detach().clone() for p in module.policy_head.parameters()]
    value_head = [p.detach().clone() for p in module.value_head.parameters()]
    assert trainer.run()
    assert all(torch.equal(a, b) for a, b in zip(head, module.policy_head.parameters()))
    assert not all(torch.equal(a, b) for a, b in zip(value_head, module.value_head.parameters()))


def first_losses(
    tmp_path: Path, normalization: str, level: float, unit: float
) -> tuple[float, float, float]:
    """The first run's reward offset, value loss and policy loss on one trajectory whose
    rewards are moved to ``level`` and multiplied by ``unit``."""
    policy = make_policy()
    buffer = SequentialBuffer(128, name="trajectory")
    trainer = PPOTrainer(
        rollout_length=64, minibatch_size=16, epochs=1, reward_normalization=normalization
    )
    folder = tmp_path / f"{normalization}_{level}_{unit}"
    writer = bind(trainer, policy, buffer, folder)
    steps = trajectory(policy, 65)
    buffer.extend([{**step, "reward": step["reward"] * unit + level} for step in steps])
    assert trainer.run()
    writer.close()
    events = EventAccumulator(str(folder / "tb"), size_guidance={"scalars": 0})
    events.Reload()
    return (
        events.Scalars("training/policy/rollout/reward_offset")[0].value,
        events.Scalars("training/policy/value_loss")[0].value,
        events.Scalars("training/policy/policy_loss")[0].value,
    )


def test_standardized_rewards_leave_the_level_and_unit_out_of_the_value_target(
    tmp_path: Path,
) -> None:
    """A curiosity reward is mostly a level that drifts, in a unit that drifts: once
    standardized, the value learns the same targets whatever they are."""
    offset, value_loss, policy_loss = first_losses(tmp_path, "standardize", 0.0, 1.0)
    moved = first_losses(tmp_path, "standardize", 50.0, 3.0)
    assert moved[0] == pytest.approx(50.0 + 3.0 * offset, rel=1e-4)
    assert moved[1:] == pytest.approx((value_loss, policy_loss), rel=1e-3, abs=1e-6)
    # Left as they are, the level is in the value's target.
    assert (
        first_losses(tmp_path, "none", 50.0, 3.0)[1]
        > 100 * first_losses(tmp_path, "none", 0.0, 1.0)[1]
    )
