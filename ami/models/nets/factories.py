"""Build each network from a size name: the ``_target_`` s of the model configs.

A config names the size once (``size: ${model.size}``) and every network follows.
Arguments are plain values because Hydra passes them; lists arrive as ``ListConfig``
and are copied into plain ints.
"""

from __future__ import annotations

from collections.abc import Sequence

from ami.config_checks import whole_number
from ami.models.nets.dynamics import ForwardDynamics
from ami.models.nets.image import ImageDecoder, ImageEncoder, halved_sizes
from ami.models.nets.policy import PolicyValue
from ami.models.nets.sizes import world_model_size
from ami.models.nets.variational import VariationalEncoder

DEFAULT_ACTION_CHOICES = (3, 3, 3, 2, 2)
"""Choices per action category of the default world's actuator."""


def image_size(height: object, width: object, layers: int) -> tuple[int, int]:
    """``(height, width)`` checked for ``layers`` stride-2 convs, naming the config key."""
    checked: list[int] = []
    for key, value in (("interaction.height", height), ("interaction.width", width)):
        side = whole_number(key, value)
        try:
            halved_sizes(side, layers)
        except ValueError as error:
            raise ValueError(f"{key}={side}: {error}") from None
        checked.append(side)
    return checked[0], checked[1]


def build_encoder(size: str, height: int = 84, width: int = 84) -> ImageEncoder:
    """An :class:`ImageEncoder` of the named size."""
    preset = world_model_size(size)
    rows, cols = image_size(height, width, len(preset.channels))
    return ImageEncoder(rows, cols, preset.latent_dim, preset.channels)


def build_decoder(size: str, height: int = 84, width: int = 84) -> ImageDecoder:
    """An :class:`ImageDecoder` of the named size (mirrors both encoders of that size)."""
    preset = world_model_size(size)
    rows, cols = image_size(height, width, len(preset.channels))
    return ImageDecoder(rows, cols, preset.latent_dim, preset.channels)


def build_vae_encoder(size: str, height: int = 84, width: int = 84) -> VariationalEncoder:
    """A :class:`VariationalEncoder` of the named size."""
    preset = world_model_size(size)
    rows, cols = image_size(height, width, len(preset.channels))
    return VariationalEncoder(rows, cols, preset.latent_dim, preset.channels)


def build_dynamics(
    size: str, action_choices: Sequence[int] = DEFAULT_ACTION_CHOICES
) -> ForwardDynamics:
    """A :class:`ForwardDynamics` of the named size."""
    preset = world_model_size(size)
    return ForwardDynamics(
        preset.latent_dim,
        [int(n) for n in action_choices],
        preset.hidden_dim,
        preset.action_embed_dim,
    )


def build_policy(size: str, action_choices: Sequence[int] = DEFAULT_ACTION_CHOICES) -> PolicyValue:
    """A :class:`PolicyValue` of the named size."""
    preset = world_model_size(size)
    return PolicyValue(
        preset.latent_dim, preset.hidden_dim, [int(n) for n in action_choices], preset.policy_width
    )
