"""The built-in world's sound: movers hum, the agent's feet step, walls thud.

Synthesised per step into a sample buffer, then heard as every audio source is, through
a :class:`~ami.interaction.io.spectrogram.LogMelSpectrogram` of the last
``window_seconds``. What it gives a world model to learn:

- **hum**: each mover sings its own pitch (boxes with an overtone, balls pure),
  louder the nearer it is (amplitude falls as 1 / distance beyond half a cell) and
  panned by its direction from the agent's heading (constant-power, left and right
  ears; front and back sound alike, as without an outer ear). Walls do not muffle it:
  a mover is heard through them, which is what makes sound tell of the unseen.
- **footsteps**: a short thud each time the body has walked a stride (0.4 cells), so
  they come faster when running and never while standing, turning or pressing
  against a wall without sliding.
- **bump**: a low, loud knock when a wall stops a move, once per contact (pressing
  on holds it silent until the agent moves off and walks in again).

A step lasts ``step_seconds`` of sound (the inference interval): the world's time is
its steps, so sound keeps pace with ``time_scale``. Noise comes from the sound's own
generator, seeded from the run's seed: the same seed and actions give the same
samples, and the world's own generator (movers, start pose) is untouched, so the
frames are the same with sound on or off.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import torch

from ami.config_checks import positive_number
from ami.interaction.io.spectrogram import LogMelSpectrogram
from ami.interaction.spaces import Box
from ami.interaction.worlds.sim.world import SimWorld
from ami.state import generator_state, load_generator_state

logger = logging.getLogger(__name__)

Floats = npt.NDArray[np.float64]

HUM_LEVEL: Final = 0.08
"""A mover's amplitude within :data:`NEAR` cells (-22 dB of full scale)."""
NEAR: Final = 0.5
"""Cells: closer than this a hum grows no louder."""
STRIDE: Final = 0.4
"""Cells walked per footstep."""
FOOTSTEP_LEVEL: Final = 0.25
BUMP_LEVEL: Final = 0.6
_FOOTSTEP_SECONDS: Final = 0.05
_BUMP_SECONDS: Final = 0.15
_NOTES: Final = (196.0, 246.9, 293.7, 349.2, 440.0, 523.3, 659.3, 784.0)
"""Hz of the movers' hums, one each in turn (an octave up for every eight movers)."""
_OVERTONE: Final = 0.4
"""A box's second harmonic, relative to its fundamental; balls have none."""
_SOUND_STREAM: Final = 0x50D
"""Mixed with the seed, so that the sound's generator is not the world's."""


class SimSound:
    """The sound of one :class:`SimWorld`, one block of samples per step.

    Call :meth:`bind` once with the world (done by
    :class:`~ami.interaction.worlds.sim.environment.SimEnvironment`), then :meth:`step`
    after each world step; :meth:`observe` is the spectrogram of the last window.

    Args:
        sample_rate: Samples per second.
        step_seconds: Sound per world step (``threads.inference.interval``).
        channels: 2 (left and right ears: direction is audible) or 1 (mono).
        n_mels: Mel bands of the spectrogram.
        window_seconds: Seconds of sound in one observation.
        hop_seconds: Seconds between the spectrogram's frames.
        fft_seconds: Length of each frame's FFT.
        seed: Seeds the footsteps' and bumps' noise.
    """

    def __init__(
        self,
        sample_rate: int = 16000,
        step_seconds: float = 0.1,
        channels: int = 2,
        n_mels: int = 64,
        window_seconds: float = 0.5,
        hop_seconds: float = 0.01,
        fft_seconds: float = 0.032,
        seed: int = 0,
    ) -> None:
        self.spectrogram = LogMelSpectrogram(
            sample_rate, n_mels, window_seconds, hop_seconds, fft_seconds, channels
        )
        self.sample_rate = sample_rate
        self.channels = channels
        self.step_samples = round(
            positive_number("interaction.audio.step_seconds", step_seconds) * sample_rate
        )
        if self.step_samples < 1:
            raise ValueError(
                f"interaction.audio.step_seconds={step_seconds!r}: shorter than one sample"
            )
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed must be a whole number >= 0 for the sound, got {seed!r}")
        self._rng = np.random.default_rng([seed, _SOUND_STREAM])
        self._event_samples = round(max(_FOOTSTEP_SECONDS, _BUMP_SECONDS) * sample_rate)
        window = self.spectrogram.window_samples
        self._window = np.zeros((channels, window), dtype=np.float32)
        self._future: Floats = np.zeros(self.step_samples + self._event_samples)
        """Centred events from this block's start on: the next blocks' part of a thud."""
        self._frequencies: Floats = np.zeros(0)
        self._overtones: Floats = np.zeros(0)
        self._phases: Floats = np.zeros(0)
        self._gains: Floats = np.zeros((0, 2))
        self._stride = 0.0
        self._pressing = False
        self._observation: torch.Tensor | None = None
        self.last_block: npt.NDArray[np.float32] = np.zeros((channels, 0), dtype=np.float32)
        """The samples of the last step, ``(channels, step_samples)`` (tests, recording)."""
        self.footsteps = 0
        """Footsteps so far."""
        self.bumps = 0
        """Bumps so far."""

    def space(self) -> Box:
        """The audio observation's declared space."""
        return self.spectrogram.space()

    def bind(self, world: SimWorld) -> None:
        """Size the hums for ``world``'s movers and fill the window with their sound now.

        The first observation then already hears every mover, as if the world had
        been humming before the run began.
        """
        count = len(world.movers.positions)
        index = np.arange(count)
        self._frequencies = np.array(
            [_NOTES[i % len(_NOTES)] * 2.0 ** ((i // len(_NOTES)) % 3) for i in index]
        )
        self._overtones = np.where(world.movers.round, 0.0, _OVERTONE)
        self._phases = np.zeros(count)
        self._gains = self._targets(world)
        self._stride, self._pressing = 0.0, False
        self._future[:] = 0.0
        window = self.spectrogram.window_samples
        self._window = self._to_channels(self._hum(self._gains, window))[:, -window:]
        self._observation = None

    def step(self, world: SimWorld) -> None:
        """Synthesise the step ``world`` just took: hums, then footsteps and a bump."""
        samples = self.step_samples
        block = self._hum(self._targets(world), samples)
        if world.walked > 0.0:
            self._walk(world.walked)
        if world.bumped and not self._pressing:
            self._add_event(self._bump(), 0)
            self.bumps += 1
        self._pressing = world.bumped
        block += self._future[None, :samples]
        self._future = np.concatenate([self._future[samples:], np.zeros(samples)])
        out = self._to_channels(np.clip(block, -1.0, 1.0))
        self.last_block = out
        window = self.spectrogram.window_samples
        if samples >= window:
            self._window = np.ascontiguousarray(out[:, -window:])
        else:
            self._window = np.concatenate([self._window[:, samples:], out], axis=1)
        self._observation = None

    def observe(self) -> torch.Tensor:
        """The spectrogram of the last window: float ``(channels, n_mels, frames)`` in [0, 1]."""
        if self._observation is None:
            self._observation = self.spectrogram(torch.from_numpy(self._window))
        return self._observation

    def window(self) -> npt.NDArray[np.float32]:
        """The last window's samples, ``(channels, window_samples)``."""
        return self._window.copy()

    def _targets(self, world: SimWorld) -> Floats:
        """``(movers, 2)``: each hum's left and right amplitude from where the agent stands."""
        x, y, heading = world.pose
        offsets = world.movers.positions - np.array([x, y])
        distance = np.hypot(offsets[:, 0], offsets[:, 1])
        level = HUM_LEVEL * NEAR / np.maximum(distance, NEAR)
        bearing = np.arctan2(offsets[:, 1], offsets[:, 0]) - math.radians(heading)
        pan = np.sin(bearing)  # +1: to the right (headings grow turning right)
        angle = (pan + 1.0) * math.pi / 4.0
        targets: Floats = level[:, None] * np.stack([np.cos(angle), np.sin(angle)], axis=-1)
        return targets

    def _hum(self, targets: Floats, samples: int) -> Floats:
        """``(2, samples)``: every hum, its gains gliding from the last step's to ``targets``."""
        if not len(targets):
            self._gains = targets
            return np.zeros((2, samples))
        omega = 2.0 * math.pi * self._frequencies / self.sample_rate
        phase = self._phases[:, None] + omega[:, None] * np.arange(samples)[None, :]
        tone = np.sin(phase) + self._overtones[:, None] * np.sin(2.0 * phase)
        glide = np.arange(1, samples + 1) / samples
        # sum over movers of (start + (target - start) * glide) * tone, as two products
        mixed: Floats = self._gains.T @ tone + (targets - self._gains).T @ (tone * glide)
        self._phases = (self._phases + omega * samples) % (2.0 * math.pi)
        self._gains = targets
        return mixed

    def _walk(self, walked: float) -> None:
        """A footstep wherever in this step the body completed a stride."""
        done = 0.0
        while self._stride + (walked - done) >= STRIDE:
            done += STRIDE - self._stride
            self._stride = 0.0
            self._add_event(self._footstep(), int(done / walked * (self.step_samples - 1)))
            self.footsteps += 1
        self._stride += walked - done

    def _add_event(self, sound: Floats, offset: int) -> None:
        self._future[offset : offset + len(sound)] += sound

    def _footstep(self) -> Floats:
        """A soft thud: low-passed noise on a 110 Hz knock, 50 ms."""
        t = np.arange(round(_FOOTSTEP_SECONDS * self.sample_rate)) / self.sample_rate
        noise = self._smoothed_noise(len(t))
        knock = np.sin(2.0 * math.pi * 110.0 * t) * np.exp(-t / 0.02)
        sound: Floats = FOOTSTEP_LEVEL * (0.5 * noise * np.exp(-t / 0.01) + knock)
        return sound

    def _bump(self) -> Floats:
        """A heavy knock: a 60 Hz boom under a sharp click, 150 ms."""
        t = np.arange(round(_BUMP_SECONDS * self.sample_rate)) / self.sample_rate
        boom = np.sin(2.0 * math.pi * 60.0 * t) * np.exp(-t / 0.05)
        click = self._smoothed_noise(len(t)) * np.exp(-t / 0.004)
        return BUMP_LEVEL * (boom + 0.5 * click)

    def _smoothed_noise(self, count: int) -> Floats:
        """Unit-peak noise with its top octaves softened (a half-millisecond average)."""
        width = max(1, round(0.0005 * self.sample_rate))
        noise = np.convolve(self._rng.standard_normal(count), np.ones(width) / width, "same")
        peak = float(np.abs(noise).max())
        return noise / peak if peak > 0 else noise

    def _to_channels(self, stereo: Floats) -> npt.NDArray[np.float32]:
        mixed = stereo if self.channels == 2 else stereo.mean(axis=0, keepdims=True)
        return np.ascontiguousarray(mixed, dtype=np.float32)

    def state_dict(self) -> dict[str, Any]:
        """The hums' phases and gains, the stride, the pending thuds, the window, the generator."""
        return {
            "phases": torch.from_numpy(self._phases.copy()),
            "gains": torch.from_numpy(self._gains.copy()),
            "stride": self._stride,
            "pressing": self._pressing,
            "future": torch.from_numpy(self._future.copy()),
            "window": torch.from_numpy(self._window.copy()),
            "footsteps": self.footsteps,
            "bumps": self.bumps,
            "rng": generator_state(self._rng),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict` into a sound bound to a world with the same movers."""
        shapes = {
            "phases": self._phases.shape,
            "future": self._future.shape,
            "window": self._window.shape,
        }
        for key, shape in shapes.items():
            saved = tuple(state[key].shape)
            if saved != shape:
                raise ValueError(
                    f"the saved world's sound has {key} of shape {saved}, this one {shape}: "
                    "interaction.environment.world.movers or interaction.audio "
                    "(sample_rate, channels, window_seconds, threads.inference.interval) changed"
                )
        self._phases = state["phases"].numpy().astype(np.float64)
        self._gains = state["gains"].numpy().astype(np.float64)
        self._stride = float(state["stride"])
        self._pressing = bool(state["pressing"])
        self._future = state["future"].numpy().astype(np.float64)
        self._window = np.ascontiguousarray(state["window"].numpy(), dtype=np.float32)
        self.footsteps = int(state["footsteps"])
        self.bumps = int(state["bumps"])
        load_generator_state(self._rng, state["rng"])
        self._observation = None


def sim_sound(enabled: bool, **settings: Any) -> SimSound | None:
    """The world's sound from ``interaction.audio``, or None when it is off (the config's hook)."""
    if not isinstance(enabled, bool):
        raise ValueError(f"interaction.audio.enabled must be true or false, got {enabled!r}")
    return SimSound(**settings) if enabled else None
