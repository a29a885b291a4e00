"""Proximal policy optimisation of the agent's policy on its latest trajectory."""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from typing_extensions import override

from ami.data.buffer import DataBuffer
from ami.data.sequential_buffer import SequentialBuffer
from ami.data.step import SEGMENT
from ami.models.nets import MultiCategorical
from ami.trainers.advantages import ReturnScaler, RewardStandardizer, generalized_advantages
from ami.trainers.trainer import Trainer

_ROLLOUT_KEYS = ("latent", "hidden", "action", "action_log_prob")

REWARD_NORMALIZATIONS = ("standardize", "return_scale", "none")
"""What :class:`PPOTrainer` can do to rewards before the advantages (``reward_normalization``)."""


class PPOTrainer(Trainer):
    """Clipped-surrogate PPO on the newest ``rollout_length`` steps of a trajectory buffer.

    A run starts once ``rollout_length`` new steps arrived. At its start the rollout is
    read in order, rewards are normalized (curiosity rewards drift as the world model
    learns: ``reward_normalization``), and GAE advantages are
    computed from the values recorded while acting, bootstrapping from the step after
    the rollout; they do not run across a segment boundary (a pause, dropped steps).
    Each optimizer step is then one shuffled minibatch, ``epochs`` passes
    in all.

    The policy reads the stored latent and hidden state instead of recomputing them,
    so the probability ratio measures changes of the policy alone. Steps whose
    ``decision`` is False only repeated an earlier action (action repeat): they train
    the value but not the policy, because the policy did not choose them.

    Args:
        policy: Name of the policy-value model (the only one trained).
        buffer: Name of the :class:`~ami.data.SequentialBuffer` the agent fills with
            ``latent, hidden, action, action_log_prob, value, reward`` (and optionally
            ``decision``).
        rollout_length: Steps per run.
        minibatch_size: Steps per optimizer step; at most ``rollout_length``.
        epochs: Passes over each rollout.
        gamma: Discount factor.
        gae_lambda: GAE's lambda.
        clip: Ratio clip of the surrogate objective.
        value_coef: Weight of the value loss.
        entropy_coef: Weight of the entropy bonus.
        reward_normalization: ``"standardize"``: subtract the rewards' recent mean and
            divide by their recent std (:class:`~ami.trainers.advantages.RewardStandardizer`);
            ``"return_scale"``: divide by the running std of discounted returns, without
            centring (:class:`~ami.trainers.advantages.ReturnScaler`); ``"none"``.
        reward_memory: With ``"standardize"``: share of the statistics' weight kept per
            rollout (0.9: about the last ten rollouts count).
        steps_per_run: Optional check: must equal
            ``epochs * (rollout_length // minibatch_size)``.
        seed: Seed of the minibatch shuffling.
        **kwargs: ``lr``, ``weight_decay``, ``max_grad_norm``: see
            :class:`~ami.trainers.trainer.Trainer`.
    """

    def __init__(
        self,
        policy: str = "policy",
        buffer: str = "trajectory",
        rollout_length: int = 128,
        minibatch_size: int = 32,
        epochs: int = 4,
        gamma: float = 0.99,
        gae_lambda: float = 0.95,
        clip: float = 0.2,
        value_coef: float = 0.5,
        entropy_coef: float = 0.01,
        reward_normalization: str = "standardize",
        reward_memory: float = 0.9,
        steps_per_run: int | None = None,
        seed: int = 0,
        **kwargs: Any,
    ) -> None:
        for key in ("batch_size", "sequence_length", "min_new_steps"):
            if key in kwargs:
                raise ValueError(f"PPOTrainer derives {key} from rollout_length/minibatch_size")
        if not 1 <= minibatch_size <= rollout_length:
            raise ValueError(
                f"minibatch_size must be in 1..rollout_length ({rollout_length}), "
                f"got {minibatch_size}"
            )
        if reward_normalization not in REWARD_NORMALIZATIONS:
            raise ValueError(
                f"reward_normalization={reward_normalization!r}: expected one of "
                f"{list(REWARD_NORMALIZATIONS)}"
            )
        if not 0.0 < reward_memory <= 1.0:
            raise ValueError(f"reward_memory must be in (0, 1], got {reward_memory}")
        if epochs < 1:
            raise ValueError(f"epochs must be >= 1, got {epochs}")
        steps = epochs * (rollout_length // minibatch_size)
        if steps_per_run is not None and steps_per_run != steps:
            raise ValueError(
                f"steps_per_run={steps_per_run} disagrees with epochs * (rollout_length // "
                f"minibatch_size) = {steps}; leave it unset"
            )
        kwargs.setdefault("lr", 3e-4)
        kwargs.setdefault("max_grad_norm", 0.5)
        super().__init__(
            trains=[policy],
            buffer=buffer,
            batch_size=minibatch_size,
            min_new_steps=rollout_length,
            steps_per_run=steps,
            **kwargs,
        )
        self.policy_name = policy
        self.rollout_length = rollout_length
        self.epochs = epochs
        self.gamma = gamma
        self.gae_lambda = gae_lambda
        self.clip = clip
        self.value_coef = value_coef
        self.entropy_coef = entropy_coef
        self.scaler: RewardStandardizer | ReturnScaler | None = None
        if reward_normalization == "standardize":
            self.scaler = RewardStandardizer(reward_memory)
        elif reward_normalization == "return_scale":
            self.scaler = ReturnScaler(gamma)
        self._shuffle = torch.Generator().manual_seed(seed)
        self._rollout: dict[str, torch.Tensor] = {}
        self._minibatches: deque[torch.Tensor] = deque()

    @override
    def check_wiring(
        self, name: str, models: Sequence[str], buffers: Mapping[str, DataBuffer]
    ) -> None:
        super().check_wiring(name, models, buffers)
        buffer = buffers[self.buffer_name]
        if not isinstance(buffer, SequentialBuffer):
            raise TypeError(
                f"trainer {name}: buffer {self.buffer_name!r} must be a SequentialBuffer "
                f"(PPO needs the latest steps in order), got {type(buffer).__name__}"
            )
        if buffer.capacity <= self.rollout_length:
            raise ValueError(
                f"trainer {name}: buffer {self.buffer_name!r} holds {buffer.capacity} "
                f"steps; rollout_length={self.rollout_length} needs at least one more"
            )

    @property
    def _scaler_key(self) -> str:
        # One key per kind, so a checkpoint's statistics never load into the other kind.
        return (
            "reward_standardizer"
            if isinstance(self.scaler, RewardStandardizer)
            else "reward_scaler"
        )

    @override
    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        if self.scaler is not None:
            state[self._scaler_key] = self.scaler.state_dict()
        state["shuffle"] = self._shuffle.get_state()
        if self._in_run:  # the rollout being learned from, and the minibatches still due
            state["rollout"] = dict(self._rollout)
            state["minibatches"] = list(self._minibatches)
        return state

    @override
    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        if self.scaler is not None and self._scaler_key in state:
            self.scaler.load_state_dict(state[self._scaler_key])
        self._shuffle.set_state(state["shuffle"])
        device = self.fabric.device
        self._rollout = {key: value.to(device) for key, value in state.get("rollout", {}).items()}
        self._minibatches = deque(state.get("minibatches", []))

    @override
    def is_ready(self) -> bool:
        # One step beyond the rollout supplies the bootstrap value.
        if self._in_run:
            return True
        new_steps = self.buffer.total_added - self._mark
        return len(self.buffer) > self.rollout_length and new_steps >= self.rollout_length

    @override
    def on_run_start(self) -> None:
        assert isinstance(self.buffer, SequentialBuffer)  # checked in check_wiring
        data = self.buffer.latest(self.rollout_length + 1)
        data = {key: value.to(self.fabric.device) for key, value in data.items()}
        raw = data["reward"][:-1].float()
        rewards = self.scaler(raw) if self.scaler is not None else raw
        values = data["value"].float()
        segment = data[SEGMENT]
        advantages, returns = generalized_advantages(
            rewards,
            values[:-1],
            values[-1],
            self.gamma,
            self.gae_lambda,
            continues=segment[1:] == segment[:-1],
        )
        # Without a decision flag, every step counts as chosen by the policy.
        decision = data["decision"][:-1].float() if "decision" in data else torch.ones_like(raw)
        count = decision.sum().clamp(min=1.0)
        mean = (advantages * decision).sum() / count
        std = (((advantages - mean) ** 2 * decision).sum() / count).sqrt()
        self._rollout = {key: data[key][:-1] for key in _ROLLOUT_KEYS}
        self._rollout.update(
            advantage=(advantages - mean) / (std + 1e-8), value_target=returns, decision=decision
        )
        per_epoch = self.rollout_length // self.batch_size
        self._minibatches.clear()
        for _ in range(self.epochs):
            order = torch.randperm(self.rollout_length, generator=self._shuffle)
            kept = order[: per_epoch * self.batch_size]
            self._minibatches.extend(kept.view(per_epoch, self.batch_size).unbind(0))
        explained = 1.0 - float((returns - values[:-1]).var() / returns.var().clamp(min=1e-8))
        stats = {
            "intrinsic_reward": float(raw.mean()),
            "reward_scale": self.scaler.stats.std if self.scaler is not None else 1.0,
            "reward_offset": (
                self.scaler.stats.mean if isinstance(self.scaler, RewardStandardizer) else 0.0
            ),
            "explained_variance": explained,
        }
        self.metrics.scalars(
            {f"training/{self.name}/rollout/{key}": v for key, v in stats.items()},
            self.global_step,
        )

    @override
    def sample(self) -> dict[str, torch.Tensor]:
        if not self._minibatches:
            raise RuntimeError(f"trainer {self.name}: no minibatch left; on_run_start not run")
        index = self._minibatches[0].to(self.fabric.device)  # removed once the step is done
        return {key: value[index] for key, value in self._rollout.items()}

    @override
    def on_step_end(self) -> None:
        self._minibatches.popleft()

    @override
    def compute_loss(self, batch: Mapping[str, torch.Tensor]) -> Mapping[str, torch.Tensor]:
        logits, value = self.module(self.policy_name)(batch["latent"], batch["hidden"])
        distribution = MultiCategorical(logits)
        log_prob = distribution.log_prob(batch["action"])
        log_ratio = log_prob - batch["action_log_prob"].float()
        ratio = log_ratio.exp()
        advantage = batch["advantage"]
        mask = batch["decision"]
        count = mask.sum().clamp(min=1.0)
        surrogate = torch.min(
            ratio * advantage, ratio.clamp(1.0 - self.clip, 1.0 + self.clip) * advantage
        )
        policy_loss = -(surrogate * mask).sum() / count
        entropy = (distribution.entropy() * mask).sum() / count
        value_loss = F.mse_loss(value.float(), batch["value_target"])
        with torch.no_grad():
            approx_kl = (((ratio - 1.0) - log_ratio) * mask).sum() / count
            clipped = ((ratio - 1.0).abs() > self.clip).float()
            clip_fraction = (clipped * mask).sum() / count
        return {
            "loss": policy_loss + self.value_coef * value_loss - self.entropy_coef * entropy,
            "policy_loss": policy_loss,
            "value_loss": value_loss,
            "entropy": entropy,
            "approx_kl": approx_kl,
            "clip_fraction": clip_fraction,
        }
