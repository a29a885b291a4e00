"""MLP encoder and decoder for vector observations (a Gymnasium env's state, a sensor's readings).

The world model needs the same two things of every modality: a latent of fixed size
from one observation, and an observation back from a latent. For an image that is a
conv stack (:mod:`ami.models.nets.image`); for a short vector (CartPole's 4 numbers)
a conv has nothing to slide over, so it is two hidden layers. The decoder's output is
unbounded (a vector's entries are not pixels in [0, 1]).

LayerNorm, not BatchNorm, for the same reason as the image nets' GroupNorm: no
running statistics updated by forward.
"""

from __future__ import annotations

from torch import Tensor, nn
from typing_extensions import override


def _check_vector(vector: Tensor, size: int) -> None:
    if vector.dim() != 2 or vector.shape[1] != size:
        raise ValueError(f"expected vectors of shape (B, {size}), got {tuple(vector.shape)}")


class VectorEncoder(nn.Module):
    """Vector (B, size) -> latent (B, latent_dim).

    Args:
        size: Entries of the observation.
        latent_dim: Size of the output vector.
        width: Width of the two hidden layers.
    """

    def __init__(self, size: int, latent_dim: int, width: int) -> None:
        super().__init__()
        self.size, self.latent_dim, self.width = int(size), int(latent_dim), int(width)
        self.layers = nn.Sequential(
            nn.Linear(self.size, self.width),
            nn.LayerNorm(self.width),
            nn.SiLU(),
            nn.Linear(self.width, self.width),
            nn.SiLU(),
            nn.Linear(self.width, self.latent_dim),
        )

    @override
    def forward(self, vector: Tensor) -> Tensor:
        """Encode a batch of vectors.

        Args:
            vector: (B, size) floats.

        Returns:
            (B, latent_dim).
        """
        _check_vector(vector, self.size)
        latent: Tensor = self.layers(vector)
        return latent


class VectorDecoder(nn.Module):
    """Latent (B, latent_dim) -> vector (B, size), unbounded.

    Args:
        size: Entries of the observation.
        latent_dim: Size of the input vector.
        width: Width of the two hidden layers.
    """

    def __init__(self, size: int, latent_dim: int, width: int) -> None:
        super().__init__()
        self.size, self.latent_dim, self.width = int(size), int(latent_dim), int(width)
        self.layers = nn.Sequential(
            nn.Linear(self.latent_dim, self.width),
            nn.SiLU(),
            nn.Linear(self.width, self.width),
            nn.SiLU(),
            nn.Linear(self.width, self.size),
        )

    @override
    def forward(self, latent: Tensor) -> Tensor:
        """Decode a batch of latents.

        Args:
            latent: (B, latent_dim).

        Returns:
            (B, size).
        """
        _check_vector(latent, self.latent_dim)
        vector: Tensor = self.layers(latent)
        return vector
