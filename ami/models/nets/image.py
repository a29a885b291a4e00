"""Convolutional image encoder and decoder, mirror images of each other.

Each conv layer halves the image (kernel 4, stride 2, padding 1: ``out = in // 2``), so
the decoder can undo every layer exactly: a transposed conv doubles its input and
``output_padding`` adds back the odd pixel the encoder dropped. Any height and width
that survive the halvings work (84x84, 64x96, 96x128), with no interpolation or crop.

Normalisation is GroupNorm, never BatchNorm: BatchNorm's running statistics would be
state updated by forward, and the inference copy sees batches of one.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn
from typing_extensions import override

from ami.models.inference_methods import inference_method

_KERNEL = 4
_STRIDE = 2
_PADDING = 1


def halved_sizes(size: int, layers: int) -> list[int]:
    """Spatial sizes through ``layers`` halving convs, input size first.

    Args:
        size: Input height or width.
        layers: Number of convs.

    Raises:
        ValueError: If the image would shrink below one pixel.
    """
    sizes = [size]
    for _ in range(layers):
        sizes.append(sizes[-1] // _STRIDE)
    if sizes[-1] < 1:
        raise ValueError(
            f"an image side of {size} is too small for {layers} stride-2 convs "
            f"(needs at least {_STRIDE**layers})"
        )
    return sizes


def group_norm(channels: int) -> nn.GroupNorm:
    """GroupNorm with up to 8 groups: batch-independent, so no running statistics."""
    groups = next(g for g in (8, 4, 2, 1) if channels % g == 0)
    return nn.GroupNorm(groups, channels)


def _check_image(image: Tensor, channels: int, height: int, width: int) -> None:
    # A mismatch would otherwise surface as an opaque matmul error in the linear layer.
    if image.dim() != 4 or tuple(image.shape[1:]) != (channels, height, width):
        raise ValueError(
            f"expected images of shape (B, {channels}, {height}, {width}), got {tuple(image.shape)}"
        )


class ImageEncoder(nn.Module):
    """Image (B, C, H, W) in [0, 1] -> latent vector (B, latent_dim).

    Args:
        height: Image height.
        width: Image width.
        latent_dim: Size of the output vector.
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
        channels = [int(c) for c in channels]
        if not channels:
            raise ValueError("channels must name at least one conv layer")
        self.height, self.width = int(height), int(width)
        self.in_channels = int(in_channels)
        self.latent_dim = int(latent_dim)
        rows = halved_sizes(self.height, len(channels))[-1]
        cols = halved_sizes(self.width, len(channels))[-1]
        layers: list[nn.Module] = []
        previous = self.in_channels
        for out in channels:
            layers += [
                nn.Conv2d(previous, out, _KERNEL, _STRIDE, _PADDING),
                group_norm(out),
                nn.SiLU(),
            ]
            previous = out
        self.convs = nn.Sequential(*layers)
        self.head = nn.Linear(previous * rows * cols, self.latent_dim)

    @override
    def forward(self, image: Tensor) -> Tensor:
        """Encode a batch of images.

        Args:
            image: (B, C, H, W) floats in [0, 1].

        Returns:
            (B, latent_dim).
        """
        _check_image(image, self.in_channels, self.height, self.width)
        features: Tensor = self.convs(image)
        latent: Tensor = self.head(features.flatten(1))
        return latent


class ImageDecoder(nn.Module):
    """Latent vector (B, latent_dim) -> image (B, C, H, W) in [0, 1].

    Built with the same ``channels`` as the :class:`ImageEncoder` it mirrors: the
    last conv's channels come first here.

    Args:
        height: Image height.
        width: Image width.
        latent_dim: Size of the input vector.
        channels: The encoder's conv channels, first encoder layer first.
        out_channels: Image channels.
    """

    def __init__(
        self,
        height: int,
        width: int,
        latent_dim: int,
        channels: Sequence[int],
        out_channels: int = 3,
    ) -> None:
        super().__init__()
        channels = [int(c) for c in channels]
        if not channels:
            raise ValueError("channels must name at least one conv layer")
        self.height, self.width = int(height), int(width)
        self.out_channels = int(out_channels)
        self.latent_dim = int(latent_dim)
        rows = halved_sizes(self.height, len(channels))
        cols = halved_sizes(self.width, len(channels))
        self._start_shape = (channels[-1], rows[-1], cols[-1])
        self.head = nn.Linear(self.latent_dim, channels[-1] * rows[-1] * cols[-1])
        outputs = [*reversed(channels[:-1]), self.out_channels]
        layers: list[nn.Module] = [nn.SiLU()]
        previous = channels[-1]
        for index, out in enumerate(outputs):
            # Undo encoder layer `depth`: double, plus the pixel its floor dropped.
            depth = len(channels) - 1 - index
            extra = (rows[depth] % 2, cols[depth] % 2)
            layers.append(
                nn.ConvTranspose2d(previous, out, _KERNEL, _STRIDE, _PADDING, output_padding=extra)
            )
            if index < len(outputs) - 1:
                layers += [group_norm(out), nn.SiLU()]
            previous = out
        self.deconvs = nn.Sequential(*layers)

    @override
    def forward(self, latent: Tensor) -> Tensor:
        """Decode a batch of latent vectors.

        Args:
            latent: (B, latent_dim).

        Returns:
            (B, C, H, W) in [0, 1].
        """
        return torch.sigmoid(self.logits(latent))

    @inference_method
    def logits(self, latent: Tensor) -> Tensor:
        """The image before the sigmoid, for ``binary_cross_entropy_with_logits``.

        A loss on the logits stays finite where the sigmoid saturates.

        Args:
            latent: (B, latent_dim).

        Returns:
            (B, C, H, W) unbounded.
        """
        features: Tensor = self.head(latent)
        image: Tensor = self.deconvs(features.view(-1, *self._start_shape))
        return image
