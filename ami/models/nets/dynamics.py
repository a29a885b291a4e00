"""Recurrent forward dynamics: predict the next latent from the latent, action and memory.

Single-step on purpose: trainers unroll it over time and the agent carries the hidden
state between frames, because a module shared between threads must not keep any.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn
from typing_extensions import override

from ami.models.inference_methods import inference_method
from ami.models.nets.action_embedding import ActionEmbedding


class ForwardDynamics(nn.Module):
    """(latent, action, hidden) -> (predicted next latent, next hidden).

    Args:
        latent_dim: Size of the encoder's latent vector.
        action_choices: Number of choices of each action category.
        hidden_dim: Size of the recurrent state.
        action_embed_dim: Embedding size of each action category.
    """

    def __init__(
        self,
        latent_dim: int,
        action_choices: Sequence[int],
        hidden_dim: int,
        action_embed_dim: int = 8,
    ) -> None:
        super().__init__()
        self.latent_dim = int(latent_dim)
        self.hidden_dim = int(hidden_dim)
        self.action_embedding = ActionEmbedding(action_choices, action_embed_dim)
        self.action_choices = self.action_embedding.action_choices
        self.cell = nn.GRUCell(self.latent_dim + self.action_embedding.out_dim, self.hidden_dim)
        self.head = nn.Sequential(
            nn.Linear(self.hidden_dim, self.hidden_dim),
            nn.SiLU(),
            nn.Linear(self.hidden_dim, self.latent_dim),
        )

    @override
    def forward(self, latent: Tensor, action: Tensor, hidden: Tensor) -> tuple[Tensor, Tensor]:
        """Advance one step.

        Args:
            latent: (B, latent_dim), the current observation's latent.
            action: (B, K) int64, the action taken.
            hidden: (B, hidden_dim), the state returned by the previous step (or
                :meth:`initial_hidden`).

        Returns:
            ``(predicted_next_latent, next_hidden)``: (B, latent_dim), (B, hidden_dim).
        """
        step = torch.cat([latent, self.action_embedding(action)], dim=-1)
        next_hidden: Tensor = self.cell(step, hidden)
        predicted: Tensor = self.head(next_hidden)
        return predicted, next_hidden

    @inference_method
    def initial_hidden(self, batch_size: int, device: torch.device | str | None = None) -> Tensor:
        """Zeros (batch_size, hidden_dim): the state before the first step.

        Args:
            batch_size: Number of sequences.
            device: Where to allocate; None uses torch's default device.
        """
        return torch.zeros(batch_size, self.hidden_dim, device=device)
