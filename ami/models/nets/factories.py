"""Build each network from a size name: the ``_target_`` s of the model configs.

A config names the size once (``size: ${model.size}``) and every network follows. The
encoder and decoder follow the world's observation too (``interaction.observation_shape``):
convolutions for an image ``(C, H, W)``, an MLP for a vector ``(N,)``, so one model
config serves the camera worlds and a Gymnasium env's state alike.

Arguments are plain values because Hydra passes them; lists arrive as ``ListConfig``
and are copied into plain ints.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ami.config_checks import whole_number
from ami.models.nets.dynamics import EnsembleDynamics, ForwardDynamics
from ami.models.nets.image import ImageDecoder, ImageEncoder, halved_sizes
from ami.models.nets.multimodal import MultimodalDecoder, MultimodalEncoder
from ami.models.nets.policy import PolicyValue
from ami.models.nets.sizes import WorldModelSize, world_model_size
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
            "agent and no world model: agent=random model.models=null model.trainers=null "
            "model.evaluation=null; "
            "or pick a world with Discrete or MultiDiscrete actions"
        )
    return [int(n) for n in action_choices]


def build_dynamics(
    size: str,
    action_choices: Sequence[int] | None = DEFAULT_ACTION_CHOICES,
    ensemble: int = 1,
) -> ForwardDynamics | EnsembleDynamics:
    """The forward model of the named size: one, or an ensemble of ``ensemble`` members.

    ``ensemble=1`` is the single :class:`ForwardDynamics` (the same parameters and the
    same draws from the global generator as ever, so older checkpoints still load);
    ``ensemble>=2`` an :class:`EnsembleDynamics`, whose members' disagreement the
    curious agent can be rewarded with (``agent.agent.reward=disagreement``).

    Raises:
        ValueError: ``ensemble`` is not a whole number >= 1, naming
            ``model.models.dynamics.ensemble``.
    """
    if isinstance(ensemble, bool) or not isinstance(ensemble, int) or ensemble < 1:
        raise ValueError(
            f"model.models.dynamics.ensemble={ensemble!r}: expected 1 (one forward model) "
            "or a whole number >= 2 (an ensemble of that many, for agent.agent.reward=disagreement)"
        )
    preset = world_model_size(size)
    choices = discrete_actions(action_choices, "dynamics")
    if ensemble == 1:
        return ForwardDynamics(
            preset.latent_dim, choices, preset.hidden_dim, preset.action_embed_dim
        )
    return EnsembleDynamics(
        ensemble, preset.latent_dim, choices, preset.hidden_dim, preset.action_embed_dim
    )


def build_policy(
    size: str,
    action_choices: Sequence[int] | None = DEFAULT_ACTION_CHOICES,
    dynamics_ensemble: int = 1,
) -> PolicyValue:
    """A :class:`PolicyValue` of the named size.

    It reads the forward model's recurrent state beside the latent: with an ensemble of
    ``dynamics_ensemble`` members (``model.models.dynamics.ensemble``) that state is
    every member's, concatenated, so its input widens with it.
    """
    if (
        isinstance(dynamics_ensemble, bool)
        or not isinstance(dynamics_ensemble, int)
        or dynamics_ensemble < 1
    ):
        raise ValueError(
            f"model.models.policy.dynamics_ensemble={dynamics_ensemble!r}: expected the "
            "dynamics model's number of members (model.models.dynamics.ensemble), >= 1"
        )
    preset = world_model_size(size)
    return PolicyValue(
        preset.latent_dim,
        preset.hidden_dim * dynamics_ensemble,
        discrete_actions(action_choices, "policy"),
        preset.policy_width,
    )


SPECTROGRAM_SETTINGS = (
    "sample_rate",
    "channels",
    "n_mels",
    "window_seconds",
    "hop_seconds",
    "fft_seconds",
)
"""The keys of ``interaction.audio`` that decide the spectrogram's shape."""


def spectrogram_shape(
    audio_shape: Sequence[object] | None, audio: Mapping[str, object] | None
) -> tuple[int, int, int]:
    """``(channels, n_mels, frames)`` of the audio modality, given or from the world's settings.

    The frame count follows from the sample rate, window, hop and FFT lengths, which
    the world's config names (``interaction.audio``) but never as a number; it is
    computed by the world's own :class:`~ami.interaction.io.spectrogram.LogMelSpectrogram`,
    so the model cannot drift from what the world observes.

    Args:
        audio_shape: The shape itself, or None.
        audio: ``interaction.audio`` (other keys, such as ``enabled``, are ignored), or None.

    Raises:
        ValueError: Unless exactly one is given and it describes a valid spectrogram.
    """
    if (audio_shape is None) == (audio is None):
        raise ValueError(
            "the audio encoder needs exactly one of audio_shape ((channels, n_mels, frames)) "
            "or audio (the world's interaction.audio settings)"
        )
    if audio is not None:
        # Imported here: ami.interaction imports the agents, which import these nets.
        from ami.interaction.io.spectrogram import LogMelSpectrogram

        settings = {key: audio[key] for key in SPECTROGRAM_SETTINGS if key in audio}
        return LogMelSpectrogram(**settings).shape  # type: ignore[arg-type]
    assert audio_shape is not None
    if isinstance(audio_shape, str) or len(audio_shape) != 3:
        raise ValueError(
            f"audio_shape={audio_shape!r}: expected (channels, n_mels, frames), three sizes"
        )
    names = ("channels", "n_mels", "frames")
    channels, bands, frames = (
        whole_number(f"audio_shape[{i}] ({name})", value)
        for i, (name, value) in enumerate(zip(names, audio_shape, strict=True))
    )
    return channels, bands, frames


def spectrogram_channels(preset: WorldModelSize, shape: tuple[int, int, int]) -> tuple[int, ...]:
    """Conv channels of the spectrogram's encoder: half the image's, as many layers as fit.

    A spectrogram holds less than a frame (two channels of 64 x 47 against three of
    84 x 84), so half the width suffices; a short window (few frames) drops the layers
    its side cannot survive instead of refusing the shape.
    """
    side = min(shape[1], shape[2])
    layers = min(len(preset.channels), side.bit_length() - 1)  # 2 ** layers <= side
    if layers < 1:
        raise ValueError(
            f"audio (channels, n_mels, frames)={shape}: n_mels and frames must be at least "
            "2 for one stride-2 conv; raise interaction.audio.n_mels or window_seconds"
        )
    return tuple(max(4, width // 2) for width in preset.channels[:layers])


def _camera_shape(image_shape: Sequence[object], layers: int) -> tuple[int, int, int]:
    shape = checked_observation_shape(image_shape, None, None, layers)
    if len(shape) != 3:
        raise ValueError(
            f"image_shape={list(image_shape)}: the audio-visual model encodes an image "
            "(channels, height, width) beside the sound, not a vector"
        )
    return shape[0], shape[1], shape[2]


def build_multimodal_encoder(
    size: str,
    image_shape: Sequence[object],
    audio_shape: Sequence[object] | None = None,
    audio: Mapping[str, object] | None = None,
) -> MultimodalEncoder:
    """An encoder of image and audio into one latent of the named size.

    Args:
        size: A preset of :data:`~ami.models.nets.WORLD_MODEL_SIZES`.
        image_shape: ``(C, H, W)`` (``interaction.observation_shape``).
        audio_shape: ``(channels, n_mels, frames)``; or, instead:
        audio: The world's ``interaction.audio`` settings, which decide that shape.
    """
    preset = world_model_size(size)
    image = _camera_shape(image_shape, len(preset.channels))
    sound = spectrogram_shape(audio_shape, audio)
    return MultimodalEncoder(
        {
            "image": ImageEncoder(image[1], image[2], preset.latent_dim, preset.channels, image[0]),
            "audio": ImageEncoder(
                sound[1], sound[2], preset.latent_dim, spectrogram_channels(preset, sound), sound[0]
            ),
        },
        preset.latent_dim,
    )


def build_multimodal_decoder(
    size: str,
    image_shape: Sequence[object],
    audio_shape: Sequence[object] | None = None,
    audio: Mapping[str, object] | None = None,
) -> MultimodalDecoder:
    """The decoder mirroring :func:`build_multimodal_encoder`: image and audio from one latent."""
    preset = world_model_size(size)
    image = _camera_shape(image_shape, len(preset.channels))
    sound = spectrogram_shape(audio_shape, audio)
    return MultimodalDecoder(
        {
            "image": ImageDecoder(image[1], image[2], preset.latent_dim, preset.channels, image[0]),
            "audio": ImageDecoder(
                sound[1], sound[2], preset.latent_dim, spectrogram_channels(preset, sound), sound[0]
            ),
        }
    )
