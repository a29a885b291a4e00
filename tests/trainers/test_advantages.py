"""GAE and reward scaling against hand-computed numbers."""

from __future__ import annotations

import pytest
import torch

from ami.trainers.advantages import (
    ReturnScaler,
    RewardStandardizer,
    RunningMeanStd,
    generalized_advantages,
)


def test_gae_matches_a_hand_computed_example() -> None:
    rewards = torch.tensor([1.0, 0.0, 2.0])
    values = torch.tensor([0.5, 1.0, 0.0])
    advantages, returns = generalized_advantages(rewards, values, 1.5, gamma=0.9, lam=0.8)
    # deltas: 1 + 0.9 * 1.0 - 0.5 = 1.4;  0 + 0.9 * 0 - 1 = -1;  2 + 0.9 * 1.5 - 0 = 3.35
    # A2 = 3.35;  A1 = -1 + 0.72 * 3.35 = 1.412;  A0 = 1.4 + 0.72 * 1.412 = 2.41664
    assert advantages.tolist() == pytest.approx([2.41664, 1.412, 3.35])
    assert returns.tolist() == pytest.approx([2.91664, 2.412, 3.35])


def test_gae_limits_are_td_and_monte_carlo() -> None:
    rewards = torch.tensor([1.0, -2.0, 0.5, 3.0])
    values = torch.tensor([0.3, -0.1, 0.8, 0.2])
    gamma, bootstrap = 0.9, 0.7
    _, td = generalized_advantages(rewards, values, bootstrap, gamma, lam=0.0)
    next_values = torch.tensor([-0.1, 0.8, 0.2, 0.7])
    assert torch.allclose(td, rewards + gamma * next_values)
    _, monte_carlo = generalized_advantages(rewards, values, bootstrap, gamma, lam=1.0)
    expected = []
    running = bootstrap
    for reward in reversed(rewards.tolist()):
        running = reward + gamma * running
        expected.append(running)
    assert monte_carlo.tolist() == pytest.approx(expected[::-1])


def test_gae_stops_at_a_segment_boundary_and_bootstraps_from_the_step_itself() -> None:
    """A pause after step 1: step 2's value must not flow back into step 1."""
    rewards = torch.tensor([1.0, 0.0, 2.0])
    values = torch.tensor([0.5, 1.0, 0.0])
    continues = torch.tensor([True, False, True])
    advantages, _ = generalized_advantages(
        rewards, values, 1.5, gamma=0.9, lam=0.8, continues=continues
    )
    # deltas: 1.4;  0 + 0.9 * 1.0 (its own value) - 1 = -0.1;  3.35
    # A2 = 3.35;  A1 = -0.1 (nothing from after the break);  A0 = 1.4 + 0.72 * -0.1 = 1.328
    assert advantages.tolist() == pytest.approx([1.328, -0.1, 3.35])
    whole, _ = generalized_advantages(
        rewards, values, 1.5, gamma=0.9, lam=0.8, continues=torch.ones(3, dtype=torch.bool)
    )
    assert whole.tolist() == pytest.approx([2.41664, 1.412, 3.35]), "no break: plain GAE"


def test_gae_rejects_mismatched_shapes() -> None:
    with pytest.raises(ValueError, match="rewards and values"):
        generalized_advantages(torch.zeros(3), torch.zeros(4), 0.0, 0.9, 0.9)


def test_running_statistics_do_not_depend_on_how_the_stream_is_cut() -> None:
    data = torch.randn(100, generator=torch.Generator().manual_seed(0)) * 3 + 2
    stats = RunningMeanStd()
    for part in (data[:7], data[7:50], data[50:51], data[51:]):
        stats.update(part)
    assert stats.mean == pytest.approx(float(data.mean()), rel=1e-6)
    assert stats.std == pytest.approx(float(data.std(unbiased=False)), rel=1e-6)


def test_return_scaler_divides_by_the_spread_of_discounted_returns() -> None:
    scaler = ReturnScaler(gamma=0.5)
    first = scaler(torch.tensor([2.0, 2.0]))
    # returns 2, 3: std 0.5
    assert first.tolist() == pytest.approx([4.0, 4.0])
    second = scaler(torch.tensor([4.0]))
    # the discounted sum carries over between calls: return 0.5 * 3 + 4 = 5.5
    returns = torch.tensor([2.0, 3.0, 5.5])
    assert second.tolist() == pytest.approx([4.0 / float(returns.std(unbiased=False))])
    # Scaling by the same number everywhere keeps the rewards' ranking and sign.
    assert scaler(torch.tensor([-1.0, 3.0])).sign().tolist() == [-1.0, 1.0]


def test_forgetting_statistics_follow_a_level_that_moves() -> None:
    everything, recent = RunningMeanStd(), RunningMeanStd(memory=0.5)
    for level in (0.0, 0.0, 0.0, 10.0, 10.0, 10.0, 10.0, 10.0):
        batch = torch.full((16,), level)
        everything.update(batch)
        recent.update(batch)
    assert everything.mean == pytest.approx(6.25)
    # Weights of the three old batches after five halvings: (1/32 + 1/64 + 1/128) of
    # the newest one's; their share of the total is about 2.7%.
    assert 9.5 < recent.mean < 10.0
    with pytest.raises(ValueError, match="memory"):
        RunningMeanStd(memory=0.0)


def test_standardized_rewards_lose_their_level_and_unit_but_keep_their_order() -> None:
    standardizer = RewardStandardizer(memory=0.9)
    rewards = torch.tensor([0.46, 0.50, 0.48, 0.70])  # a latent error: a level, small spread
    out = standardizer(rewards)
    assert float(out.mean()) == pytest.approx(0.0, abs=1e-6)
    assert float(out.std(unbiased=False)) == pytest.approx(1.0, rel=1e-5)
    assert out.argsort().tolist() == rewards.argsort().tolist()
    # The same rewards in another unit (the encoder's latent grew) come out the same.
    rescaled = RewardStandardizer(memory=0.9)(rewards * 3.0 + 1.0)
    assert rescaled.tolist() == pytest.approx(out.tolist(), abs=1e-5)


def test_a_standardizer_restores_its_statistics() -> None:
    first = RewardStandardizer(memory=0.8)
    first(torch.tensor([1.0, 2.0, 4.0]))
    second = RewardStandardizer(memory=0.8)
    second.load_state_dict(first.state_dict())
    later = torch.tensor([3.0, 0.0])
    assert second(later).tolist() == pytest.approx(first(later).tolist())
