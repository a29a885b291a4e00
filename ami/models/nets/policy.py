"""Actor-critic head: from the agent's latent and memory to action logits and a value."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn
from typing_extensions import override


class PolicyValue(nn.Module):
    """(latent, hidden) -> (one logits tensor per action category, value).

    Policy and value share a trunk, so the value loss also shapes the features the
    policy reads. The policy head starts near zero, so the first actions are close to
    uniform whatever the features.

    Args:
        latent_dim: Size of the encoder's latent vector.
        hidden_dim: Size of the dynamics' recurrent state.
        action_choices: Number of choices of each action category.
        width: Width of the trunk's two hidden layers.
    """

    def __init__(
        self,
        latent_dim: int,
        hidden_dim: int,
        action_choices: Sequence[int],
        width: int,
    ) -> None:
        super().__init__()
        self.action_choices = tuple(int(n) for n in action_choices)
        if not self.action_choices or min(self.action_choices) < 1:
            raise ValueError(f"invalid action_choices {list(self.action_choices)}")
        in_dim = int(latent_dim) + int(hidden_dim)
        width = int(width)
        self.trunk = nn.Sequential(
            # The latent is unbounded and the hidden state in [-1, 1]; put them on one scale.
            nn.LayerNorm(in_dim),
            nn.Linear(in_dim, width),
            nn.SiLU(),
            nn.Linear(width, width),
            nn.SiLU(),
        )
        self.policy_head = nn.Linear(width, sum(self.action_choices))
        self.value_head = nn.Linear(width, 1)
        with torch.no_grad():
            self.policy_head.weight.mul_(0.01)
            self.policy_head.bias.zero_()

    @override
    def forward(self, latent: Tensor, hidden: Tensor) -> tuple[tuple[Tensor, ...], Tensor]:
        """Act and evaluate.

        Args:
            latent: (B, latent_dim).
            hidden: (B, hidden_dim).

        Returns:
            ``(logits, value)``: logits is a tuple with one (B, n_k) tensor per
            category (feed it to :class:`~ami.models.nets.MultiCategorical`); value
            is (B,).
        """
        features: Tensor = self.trunk(torch.cat([latent, hidden], dim=-1))
        logits: Tensor = self.policy_head(features)
        value: Tensor = self.value_head(features)
        return torch.split(logits, list(self.action_choices), dim=-1), value.squeeze(-1)
