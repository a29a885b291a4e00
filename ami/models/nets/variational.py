"""Variational (VAE) image encoder and the two small functions a VAE loss needs.

The encoder returns the Gaussian's parameters, not a sample: the caller decides
whether to sample (training) or use the mean (acting), and the module stays a pure
function of its input.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn
from typing_extensions import override

from ami.models.nets.image import ImageEncoder


class VariationalEncoder(nn.Module):
    """Image (B, C, H, W) -> (mean, log_var) of a diagonal Gaussian, each (B, latent_dim).

    Args:
        height: Image height.
        width: Image width.
        latent_dim: Size of the latent vector.
        channels: Output channels of each stride-2 conv, first layer first.
        in_channels: Image channels.
    """

    def __init__(
        self,
        height: int,
        width: int,
        latent_dim: int,
        channels: Sequence[int],
        in_channels: int = 3,
    ) -> None:
        super().__init__()
        self.latent_dim = int(latent_dim)
        # One encoder emits both halves, so mean and variance share every feature.
        self.encoder = ImageEncoder(height, width, 2 * self.latent_dim, channels, in_channels)

    @override
    def forward(self, image: Tensor) -> tuple[Tensor, Tensor]:
        """Encode a batch of images.

        Args:
            image: (B, C, H, W) floats in [0, 1].

        Returns:
            ``(mean, log_var)``, each (B, latent_dim).
        """
        mean, log_var = self.encoder(image).chunk(2, dim=-1)
        return mean, log_var


def reparameterize(
    mean: Tensor, log_var: Tensor, generator: torch.Generator | None = None
) -> Tensor:
    """Sample ``mean + std * noise`` so gradients flow into mean and log_var.

    Args:
        mean: (..., latent_dim).
        log_var: (..., latent_dim), log of the variance.
        generator: Source of the noise, for reproducible samples.

    Returns:
        A sample of mean's shape.
    """
    noise = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
    return mean + torch.exp(0.5 * log_var) * noise


def kl_divergence(mean: Tensor, log_var: Tensor) -> Tensor:
    """KL(N(mean, exp(log_var)) || N(0, I)), summed over the latent dimension.

    Args:
        mean: (..., latent_dim).
        log_var: (..., latent_dim).

    Returns:
        (...,): one value per sample, so the caller picks the reduction and weight.
    """
    return -0.5 * (1.0 + log_var - mean.square() - log_var.exp()).sum(dim=-1)
