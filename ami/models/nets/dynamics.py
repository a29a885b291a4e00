"""Recurrent forward dynamics: predict the next latent from the latent, action and memory.

Single-step on purpose: trainers unroll it over time and the agent carries the hidden
state between frames, because a module shared between threads must not keep any.
:class:`EnsembleDynamics` runs several such models side by side, for a curiosity
reward from their disagreement.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

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


class EnsembleDynamics(nn.Module):
    """Several :class:`ForwardDynamics`, each from its own initialisation, side by side.

    Their disagreement (the variance of their predictions across members) is a curiosity
    signal that a source of pure noise cannot capture (Pathak et al. 2019): trained on
    the same data, the members converge where the world is learnable and all learn the
    mean where it is noise, so only what is new and learnable keeps them apart.

    It has :class:`ForwardDynamics`' interface, so every user of a single model works
    with it unchanged: ``forward`` returns the members' mean prediction, and the
    recurrent state is the members' states concatenated, ``(B, members * member_hidden_dim)``
    (``hidden_dim`` is that width). :meth:`predict_members` gives each member's own
    prediction, for a disagreement reward and for training each member on its own loss.

    Members are built one after the other from torch's global generator, as any net is:
    a seeded run builds the same ensemble.

    Args:
        members: Number of members, at least 2.
        latent_dim: Size of the encoder's latent vector.
        action_choices: Number of choices of each action category.
        member_hidden_dim: Size of each member's recurrent state.
        action_embed_dim: Embedding size of each action category.
    """

    def __init__(
        self,
        members: int,
        latent_dim: int,
        action_choices: Sequence[int],
        member_hidden_dim: int,
        action_embed_dim: int = 8,
    ) -> None:
        super().__init__()
        if isinstance(members, bool) or not isinstance(members, int) or members < 2:
            raise ValueError(
                f"EnsembleDynamics: members={members!r}: expected a whole number >= 2 "
                "(one model is a ForwardDynamics)"
            )
        self.members = members
        self.nets = nn.ModuleList(
            ForwardDynamics(latent_dim, action_choices, member_hidden_dim, action_embed_dim)
            for _ in range(members)
        )
        first = cast(ForwardDynamics, self.nets[0])
        self.latent_dim = first.latent_dim
        self.member_hidden_dim = first.hidden_dim
        self.hidden_dim = members * first.hidden_dim
        self.action_choices = first.action_choices

    @override
    def forward(self, latent: Tensor, action: Tensor, hidden: Tensor) -> tuple[Tensor, Tensor]:
        """Advance every member one step; the prediction is their mean.

        Args:
            latent: (B, latent_dim).
            action: (B, K) int64.
            hidden: (B, hidden_dim), the members' states concatenated.

        Returns:
            ``(mean_prediction, next_hidden)``: (B, latent_dim), (B, hidden_dim).
        """
        predictions, next_hidden = self.predict_members(latent, action, hidden)
        return predictions.mean(dim=0), next_hidden

    @inference_method
    def predict_members(
        self, latent: Tensor, action: Tensor, hidden: Tensor
    ) -> tuple[Tensor, Tensor]:
        """Advance every member one step and return each one's prediction.

        Args:
            latent: (B, latent_dim).
            action: (B, K) int64.
            hidden: (B, hidden_dim), the members' states concatenated.

        Returns:
            ``(predictions, next_hidden)``: (members, B, latent_dim), (B, hidden_dim).

        Raises:
            ValueError: ``hidden`` is not ``hidden_dim`` wide (e.g. a single model's state).
        """
        if hidden.dim() != 2 or hidden.shape[1] != self.hidden_dim:
            raise ValueError(
                f"EnsembleDynamics of {self.members} members expects a hidden state of shape "
                f"(B, {self.hidden_dim}) ({self.members} x {self.member_hidden_dim}), "
                f"got {tuple(hidden.shape)}"
            )
        predictions = []
        next_hiddens = []
        states = torch.split(hidden, self.member_hidden_dim, dim=1)
        for net, state in zip(self.nets, states, strict=True):
            predicted, next_state = net(latent, action, state)
            predictions.append(predicted)
            next_hiddens.append(next_state)
        return torch.stack(predictions), torch.cat(next_hiddens, dim=1)

    @inference_method
    def initial_hidden(self, batch_size: int, device: torch.device | str | None = None) -> Tensor:
        """Zeros (batch_size, hidden_dim): every member's state before the first step.

        Args:
            batch_size: Number of sequences.
            device: Where to allocate; None uses torch's default device.
        """
        return torch.zeros(batch_size, self.hidden_dim, device=device)


def disagreement(predictions: Tensor) -> Tensor:
    """The members' disagreement: the variance across members (dim 0), mean over the rest.

    The variance is about the members' mean (no Bessel correction), so that the
    members' mean squared error is exactly the mean prediction's plus this.

    Args:
        predictions: ``(members, ...)``, as from :meth:`EnsembleDynamics.predict_members`.
    """
    return predictions.var(dim=0, correction=0).mean()
