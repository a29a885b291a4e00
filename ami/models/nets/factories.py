"""Build each network from a size name: the ``_target_`` s of the model configs.

A config names the size once (``size: ${model.size}``) and every network follows. The
encoder and decoder follow the world's observation too (``interaction.observation_shape``):
convolutions for an image ``(C, H, W)``, an MLP for a vector ``(N,)``, so one model
config serves the camera worlds and a Gymnasium env's state alike.

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
from ami.models.nets.vector import VectorDecoder, VectorEncoder

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


def checked_observation_shape(
    shape: Sequence[object] | None, height: object, width: object, layers: int
) -> tuple[int, ...]:
    """The observation's shape, checked: ``(C, H, W)`` for an image, ``(N,)`` for a vector.

    Args:
        shape: ``interaction.observation_shape``; None is the camera's ``(3, height, width)``.
        height: ``interaction.height``, when ``shape`` is None.
        width: ``interaction.width``, when ``shape`` is None.
        layers: Stride-2 convs an image must survive.

    Raises:
        ValueError: Naming the key and what is accepted.
    """
    if shape is None:
        shape = (3, height, width)
    shape = list(shape)
    if len(shape) == 3:
        channels = whole_number("interaction.observation_shape[0] (channels)", shape[0])
        return (channels, *image_size(shape[1], shape[2], layers))
    if len(shape) == 1:
        return (whole_number("interaction.observation_shape[0] (entries)", shape[0]),)
    raise ValueError(
        f"interaction.observation_shape={shape}: the world model encodes an image "
        "(channels, height, width) or a vector (entries,)"
    )


def build_encoder(
    size: str,
    height: int = 84,
    width: int = 84,
    observation_shape: Sequence[int] | None = None,
) -> ImageEncoder | VectorEncoder:
    """The encoder of the named size for the observation: conv for an image, MLP for a vector.

    ``observation_shape`` (``interaction.observation_shape``) decides: ``(C, H, W)``
    is an image, ``(N,)`` a vector; None is a camera of ``height`` x ``width``.
    """
    preset = world_model_size(size)
    shape = checked_observation_shape(observation_shape, height, width, len(preset.channels))
    if len(shape) == 1:
        return VectorEncoder(shape[0], preset.latent_dim, preset.hidden_dim)
    return ImageEncoder(shape[1], shape[2], preset.latent_dim, preset.channels, shape[0])


def build_decoder(
    size: str,
    height: int = 84,
    width: int = 84,
    observation_shape: Sequence[int] | None = None,
) -> ImageDecoder | VectorDecoder:
    """The decoder mirroring :func:`build_encoder` (and the VAE encoder) of that size."""
    preset = world_model_size(size)
    shape = checked_observation_shape(observation_shape, height, width, len(preset.channels))
    if len(shape) == 1:
        return VectorDecoder(shape[0], preset.latent_dim, preset.hidden_dim)
    return ImageDecoder(shape[1], shape[2], preset.latent_dim, preset.channels, shape[0])


def build_vae_encoder(size: str, height: int = 84, width: int = 84) -> VariationalEncoder:
    """A :class:`VariationalEncoder` of the named size."""
    preset = world_model_size(size)
    rows, cols = image_size(height, width, len(preset.channels))
    return VariationalEncoder(rows, cols, preset.latent_dim, preset.channels)


def discrete_actions(action_choices: Sequence[int] | None, model: str) -> list[int]:
    """``interaction.action_choices`` as ints, or the refusal of continuous actions.

    The dynamics model embeds each category's choice and the policy outputs logits
    per category: neither has a place for a continuous action (a Box), whose world
    leaves ``interaction.action_choices`` null.
    """
    if action_choices is None:
        raise ValueError(
            f"interaction.action_choices=null: the world model's {model} model embeds "
            "discrete action choices, and this world lists none (it takes continuous "
            "actions, a Box, or leaves its space open). Run such a world with the random "
            "agent and no world model: agent=random model.models=null model.trainers=null; "
            "or pick a world with Discrete or MultiDiscrete actions"
        )
    return [int(n) for n in action_choices]


def build_dynamics(
    size: str, action_choices: Sequence[int] | None = DEFAULT_ACTION_CHOICES
) -> ForwardDynamics:
    """A :class:`ForwardDynamics` of the named size."""
    preset = world_model_size(size)
    return ForwardDynamics(
        preset.latent_dim,
        discrete_actions(action_choices, "dynamics"),
        preset.hidden_dim,
        preset.action_embed_dim,
    )


def build_policy(
    size: str, action_choices: Sequence[int] | None = DEFAULT_ACTION_CHOICES
) -> PolicyValue:
    """A :class:`PolicyValue` of the named size."""
    preset = world_model_size(size)
    return PolicyValue(
        preset.latent_dim,
        preset.hidden_dim,
        discrete_actions(action_choices, "policy"),
        preset.policy_width,
    )
