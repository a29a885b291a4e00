"""A vector for a multi-discrete action: one learned embedding per category, concatenated.

All categories share one table, each at its own offset, so embedding an action is a
single lookup whatever the number of categories.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn
from typing_extensions import override


class ActionEmbedding(nn.Module):
    """Action indices (B, K) int64 -> (B, K * embed_dim).

    Args:
        action_choices: Number of choices of each of the K categories.
        embed_dim: Size of each category's embedding.
    """

    def __init__(self, action_choices: Sequence[int], embed_dim: int) -> None:
        super().__init__()
        self.action_choices = tuple(int(n) for n in action_choices)
        if not self.action_choices or min(self.action_choices) < 1:
            raise ValueError(
                f"action_choices must list at least one category, each with at least "
                f"one choice; got {list(self.action_choices)}"
            )
        self.embed_dim = int(embed_dim)
        self.out_dim = len(self.action_choices) * self.embed_dim
        self.table = nn.Embedding(sum(self.action_choices), self.embed_dim)
        starts = torch.tensor([0, *self.action_choices[:-1]]).cumsum(0)
        # A constant that moves with the module; never written after construction.
        self.offsets: Tensor
        self.register_buffer("offsets", starts, persistent=False)

    @override
    def forward(self, action: Tensor) -> Tensor:
        """Embed a batch of actions.

        Args:
            action: (B, K) int64, entry k in ``[0, action_choices[k])``.

        Returns:
            (B, K * embed_dim).
        """
        if action.dim() != 2 or action.shape[1] != len(self.action_choices):
            raise ValueError(
                f"expected actions of shape (B, {len(self.action_choices)}), "
                f"got {tuple(action.shape)}"
            )
        embedded: Tensor = self.table(action + self.offsets)
        return embedded.flatten(1)
