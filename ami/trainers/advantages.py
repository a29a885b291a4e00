"""Returns and advantages for on-policy learning, and a scale for drifting rewards.

Kept apart from the PPO trainer so the arithmetic can be checked against hand-computed
examples without a runtime.
"""

from __future__ import annotations

import torch


def generalized_advantages(
    rewards: torch.Tensor,
    values: torch.Tensor,
    bootstrap: torch.Tensor | float,
    gamma: float,
    lam: float,
    continues: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """GAE(gamma, lambda) over one trajectory without episode ends.

    The agent lives in one continuing world, so no step is terminal: the last step
    bootstraps from the value of the step that follows the trajectory. Where the
    trajectory breaks (a pause, a drop: the next recorded step does not follow), the
    advantage stops accumulating, and the step before the break, whose successor's
    value was never recorded, bootstraps from its own value instead.

    Args:
        rewards: (T,) reward of each step's transition.
        values: (T,) value estimate of each step, as recorded while acting.
        bootstrap: Value estimate of the step after the last one.
        gamma: Discount factor.
        lam: GAE's lambda: 0 is one-step TD, 1 is the Monte-Carlo return.
        continues: (T,) bool, whether step t+1 (or the bootstrap step, for the last)
            follows step t; None: every step does.

    Returns:
        ``(advantages, returns)``, each (T,); ``returns = advantages + values`` is the
        value target.
    """
    if rewards.shape != values.shape or rewards.dim() != 1:
        raise ValueError(
            f"rewards and values must both be (T,), got {tuple(rewards.shape)} "
            f"and {tuple(values.shape)}"
        )
    rewards = rewards.float()
    values = values.float()
    last = torch.as_tensor(bootstrap, dtype=values.dtype, device=values.device).reshape(1)
    next_values = torch.cat([values[1:], last])
    follows = [True] * len(rewards) if continues is None else continues.bool().tolist()
    if len(follows) != len(rewards):
        raise ValueError(f"continues must be (T,) like rewards, got {len(follows)} entries")
    if continues is not None:
        next_values = torch.where(continues.to(values.device).bool(), next_values, values)
    deltas = (rewards + gamma * next_values - values).tolist()
    advantages = [0.0] * len(deltas)
    running = 0.0
    for t in range(len(deltas) - 1, -1, -1):
        running = deltas[t] + gamma * lam * running * follows[t]
        advantages[t] = running
    advantage = torch.tensor(advantages, dtype=values.dtype, device=values.device)
    return advantage, advantage + values


class RunningMeanStd:
    """Mean and variance of a stream of numbers, updated a batch at a time.

    Uses the parallel-variance formula (Chan et al.), so with ``memory=1`` the result
    does not depend on how the stream is cut into batches. With ``memory < 1`` the
    weight of everything seen so far is multiplied by ``memory`` before each batch is
    folded in: the statistics follow a stream whose level drifts (a curiosity reward,
    as the world model learns) instead of averaging over its whole history.

    Args:
        memory: Share of the old statistics' weight kept at each batch, in (0, 1].
    """

    def __init__(self, memory: float = 1.0) -> None:
        if not 0.0 < memory <= 1.0:
            raise ValueError(f"memory must be in (0, 1], got {memory}")
        self.memory = memory
        self.mean = 0.0
        self.var = 1.0
        self.count = 0.0

    def update(self, values: torch.Tensor) -> None:
        """Fold a batch of numbers into the running statistics."""
        values = values.detach().double().flatten()
        if values.numel() == 0:
            return
        self.count *= self.memory
        batch_mean = float(values.mean())
        batch_var = float(values.var(unbiased=False))
        batch_count = float(values.numel())
        if self.count == 0:
            self.mean, self.var, self.count = batch_mean, batch_var, batch_count
            return
        total = self.count + batch_count
        delta = batch_mean - self.mean
        self.mean += delta * batch_count / total
        m2 = self.var * self.count + batch_var * batch_count
        self.var = (m2 + delta**2 * self.count * batch_count / total) / total
        self.count = total

    @property
    def std(self) -> float:
        """Standard deviation (0 before any data)."""
        return float(self.var**0.5) if self.count else 0.0


class ReturnScaler:
    """Divides rewards by the running standard deviation of their discounted sum.

    Curiosity rewards change scale as the world model learns (and as the encoder's
    latent drifts); dividing by the spread of discounted returns, as in random network
    distillation, keeps the value targets and the entropy bonus on a steady footing
    without shifting the rewards' sign.

    Args:
        gamma: Discount of the returns whose spread is tracked.
        epsilon: Floor of the divisor, so a flat stream does not blow up.
    """

    def __init__(self, gamma: float, epsilon: float = 1e-8) -> None:
        self.gamma = gamma
        self.epsilon = epsilon
        self.stats = RunningMeanStd()
        self._return = 0.0

    def __call__(self, rewards: torch.Tensor) -> torch.Tensor:
        """Update the statistics with ``rewards`` (in time order) and return them scaled."""
        returns = torch.empty(len(rewards), dtype=torch.float64)
        running = self._return
        for t, reward in enumerate(rewards.detach().double().tolist()):
            running = running * self.gamma + reward
            returns[t] = running
        self._return = running
        self.stats.update(returns)
        return rewards / max(self.stats.std, self.epsilon)

    def state_dict(self) -> dict[str, float]:
        """The running statistics, for a checkpoint."""
        stats = self.stats
        return {"mean": stats.mean, "var": stats.var, "count": stats.count, "ret": self._return}

    def load_state_dict(self, state: dict[str, float]) -> None:
        """Restore :meth:`state_dict`."""
        self.stats.mean, self.stats.var = float(state["mean"]), float(state["var"])
        self.stats.count, self._return = float(state["count"]), float(state["ret"])


class RewardStandardizer:
    """Centres rewards on their recent mean and divides by their recent spread.

    A curiosity reward drifts in level and unit (the forward model improves, the
    encoder's latent changes scale), and its level is mostly the same at every step. In
    a task that never ends, subtracting a constant from every reward leaves the best
    policy unchanged, but it takes that constant out of the value's target: the value
    then learns which states are more surprising than usual, instead of chasing a level
    that moves (the uncentred :class:`ReturnScaler` left the value's explained variance
    below zero in every 10-minute run, docs/learning.md). The statistics forget
    (``memory`` per rollout), so they follow the drift.

    Args:
        memory: Share of the statistics' weight kept at each call (one rollout).
        epsilon: Floor of the divisor, so a flat stream does not blow up.
    """

    def __init__(self, memory: float = 0.9, epsilon: float = 1e-8) -> None:
        self.epsilon = epsilon
        self.stats = RunningMeanStd(memory)

    def __call__(self, rewards: torch.Tensor) -> torch.Tensor:
        """Fold ``rewards`` into the statistics and return them standardized."""
        self.stats.update(rewards)
        return (rewards - self.stats.mean) / max(self.stats.std, self.epsilon)

    def state_dict(self) -> dict[str, float]:
        """The running statistics, for a checkpoint."""
        stats = self.stats
        return {"mean": stats.mean, "var": stats.var, "count": stats.count}

    def load_state_dict(self, state: dict[str, float]) -> None:
        """Restore :meth:`state_dict`."""
        self.stats.mean, self.stats.var = float(state["mean"]), float(state["var"])
        self.stats.count = float(state["count"])
