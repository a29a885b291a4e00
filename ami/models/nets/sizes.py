"""Named world-model sizes, so one config value (``model.size``) scales every network.

``small`` is the CPU default: encoder, dynamics and policy for one frame take a few
milliseconds on two cores. ``medium`` and ``large`` are for a GPU.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class WorldModelSize:
    """The widths of the world model's networks.

    Attributes:
        latent_dim: Size of the image encoder's latent vector.
        channels: Channels of each stride-2 conv of the encoder (the decoder mirrors
            them). Each conv halves the image, so an image side must be at least
            ``2 ** len(channels)``.
        hidden_dim: Size of the dynamics' recurrent state.
        action_embed_dim: Embedding size of each action category.
        policy_width: Width of the policy-value trunk.
    """

    latent_dim: int
    channels: tuple[int, ...]
    hidden_dim: int
    action_embed_dim: int
    policy_width: int


SMALL = WorldModelSize(
    latent_dim=64, channels=(16, 32, 64, 64), hidden_dim=128, action_embed_dim=8, policy_width=128
)
MEDIUM = WorldModelSize(
    latent_dim=256,
    channels=(32, 64, 128, 128),
    hidden_dim=512,
    action_embed_dim=16,
    policy_width=256,
)
LARGE = WorldModelSize(
    latent_dim=512,
    channels=(64, 128, 256, 256),
    hidden_dim=1024,
    action_embed_dim=32,
    policy_width=512,
)

WORLD_MODEL_SIZES: dict[str, WorldModelSize] = {"small": SMALL, "medium": MEDIUM, "large": LARGE}
"""The presets by name, smallest first."""


def world_model_size(name: str, setting: str = "model.size") -> WorldModelSize:
    """The preset called ``name``.

    Args:
        name: One of the keys of :data:`WORLD_MODEL_SIZES`.
        setting: The config key the name came from, so the error points at it.

    Raises:
        ValueError: If ``name`` is not a preset; the message lists the presets.
    """
    try:
        return WORLD_MODEL_SIZES[name]
    except (KeyError, TypeError):
        choices = ", ".join(WORLD_MODEL_SIZES)
        raise ValueError(f"{setting}={name!r} is not one of: {choices}") from None
