"""A distribution over multi-discrete actions: independent categoricals, one per category.

The categories' log-probabilities are padded to a common width with ``-inf`` and
stacked, so sampling, scoring and entropy are each one batched operation instead of a
loop over categories. Plain tensor arithmetic, so it works under
``torch.inference_mode`` and with any leading batch shape, e.g. (T, B).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor


class MultiCategorical:
    """Independent categorical distributions, one per action category.

    Args:
        logits: One (..., n_k) tensor per category, all with the same leading shape
            (as returned by :class:`~ami.models.nets.PolicyValue`).
    """

    def __init__(self, logits: Sequence[Tensor]) -> None:
        if not logits:
            raise ValueError("MultiCategorical needs logits for at least one category")
        batch_shape = logits[0].shape[:-1]
        for tensor in logits:
            if tensor.shape[:-1] != batch_shape:
                raise ValueError(
                    "all logits must share their leading shape, got "
                    f"{[tuple(t.shape) for t in logits]}"
                )
        self.batch_shape = batch_shape
        self.choices = tuple(tensor.shape[-1] for tensor in logits)
        width = max(self.choices)
        # At least float32: PPO's ratio exp(new - old) magnifies half-precision rounding.
        dtype = torch.promote_types(logits[0].dtype, torch.float32)
        padded = [
            torch.nn.functional.pad(
                tensor.to(dtype), (0, width - tensor.shape[-1]), value=-torch.inf
            )
            for tensor in logits
        ]
        self.log_probs = torch.stack(padded, dim=-2).log_softmax(dim=-1)
        """(..., K, max n_k) log-probabilities; padding entries are -inf."""
        self.valid = torch.arange(width, device=self.log_probs.device) < torch.tensor(
            self.choices, device=self.log_probs.device
        ).unsqueeze(-1)
        """(K, max n_k): True where a choice exists."""

    @property
    def probs(self) -> Tensor:
        """(..., K, max n_k) probabilities; padding entries are 0."""
        return self.log_probs.exp()

    def sample(self, generator: torch.Generator | None = None) -> Tensor:
        """Draw one action per batch entry.

        Args:
            generator: Source of randomness, for reproducible draws.

        Returns:
            (..., K) int64.
        """
        flat = self.probs.flatten(end_dim=-2)
        drawn = torch.multinomial(flat, 1, generator=generator)
        return drawn.view(*self.batch_shape, len(self.choices))

    def mode(self) -> Tensor:
        """The most likely choice of each category, (..., K) int64."""
        return self.log_probs.argmax(dim=-1)

    def log_prob(self, action: Tensor) -> Tensor:
        """Log-probability of whole actions, summed over categories.

        Args:
            action: (..., K) int64.

        Returns:
            (...,).
        """
        return self.log_probs_per_category(action).sum(dim=-1)

    def log_probs_per_category(self, action: Tensor) -> Tensor:
        """Log-probability of each category's choice, (..., K)."""
        if action.shape[-1] != len(self.choices):
            raise ValueError(
                f"expected actions with {len(self.choices)} categories, "
                f"got shape {tuple(action.shape)}"
            )
        return self.log_probs.gather(-1, action.unsqueeze(-1)).squeeze(-1)

    def entropies(self) -> Tensor:
        """Entropy of each category, (..., K)."""
        # Padding would give 0 * -inf = nan; with log p set to 0 it gives 1 * 0 = 0.
        log_probs = self.log_probs.masked_fill(~self.valid, 0.0)
        return -(log_probs.exp() * log_probs).sum(dim=-1)

    def entropy(self) -> Tensor:
        """Entropy of whole actions (the categories are independent, so a sum), (...,)."""
        return self.entropies().sum(dim=-1)
