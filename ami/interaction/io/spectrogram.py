"""Sound as the agent hears it: a log-mel spectrogram of the last moment, in torch.

Every audio source (a microphone, a WAV file, the built-in world's sound) hands its
last ``window_seconds`` of samples to one :class:`LogMelSpectrogram`, so a model sees
the same kind of tensor whichever world it lives in: float ``(channels, n_mels,
frames)`` in ``[0, 1]``, laid out like an image (``(C, H, W)``: bands low to high
along H, time old to new along W), so that an image encoder reads it unchanged.

The scale is absolute, not per window: ``1`` is a full-scale sine (amplitude 1) or
louder, ``0`` is ``-floor_db`` dB below it or quieter, linear in dB between. Silence
stays silence and a near sound stays louder than a far one; a window normalised to
its own maximum would turn faint noise into a roar and lose distance.

The mel filter bank is built here (HTK mel scale, triangles of peak 1), so the
project needs no torchaudio.
"""

from __future__ import annotations

import math
from typing import Final

import torch

from ami.config_checks import positive_number, whole_number
from ami.interaction.spaces import Box

AUDIO: Final = "audio"
"""The audio modality: float ``(channels, n_mels, frames)`` in ``[0, 1]``."""

_SILENCE: Final = 1e-12
"""Least power, so that log10 of silence is finite (-120 dB, below any floor)."""


def hz_to_mel(hz: torch.Tensor) -> torch.Tensor:
    """The HTK mel scale: about linear below 1 kHz, logarithmic above."""
    return 2595.0 * torch.log10(1.0 + hz / 700.0)


def mel_to_hz(mel: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`hz_to_mel`."""
    return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)


def mel_filter_bank(
    sample_rate: int, n_fft: int, n_mels: int, f_min: float, f_max: float
) -> torch.Tensor:
    """``(n_mels, n_fft // 2 + 1)``: triangles spaced evenly in mel, each peaking at 1.

    Peak 1 (not unit area) keeps a tone's level the same whichever band it falls in,
    which is what the absolute scale above needs.

    Raises:
        ValueError: A band catches no FFT bin (too many bands for the FFT's resolution).
    """
    edges = mel_to_hz(
        torch.linspace(
            float(hz_to_mel(torch.tensor(f_min))),
            float(hz_to_mel(torch.tensor(f_max))),
            n_mels + 2,
            dtype=torch.float64,
        )
    )
    bins = torch.linspace(0.0, sample_rate / 2.0, n_fft // 2 + 1, dtype=torch.float64)
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (bins - lower) / (centre - lower)
    falling = (upper - bins) / (upper - centre)
    bank = torch.clamp(torch.minimum(rising, falling), min=0.0)
    empty = (bank.sum(dim=1) == 0).nonzero().flatten().tolist()
    if empty:
        raise ValueError(
            f"interaction.audio.n_mels={n_mels}: mel band(s) {empty} catch no FFT bin at "
            f"fft_seconds={n_fft / sample_rate:g} ({sample_rate / n_fft:.1f} Hz per bin); "
            "use fewer bands, a longer fft_seconds or a higher f_min"
        )
    return bank.to(torch.float32)


class LogMelSpectrogram:
    """Samples of the last window -> float ``(channels, n_mels, frames)`` in ``[0, 1]``.

    Frames are taken without padding: ``frames = 1 + (window - fft) // hop`` in
    samples (64 x 47 with the defaults: 0.5 s at 16 kHz, a 32 ms FFT every 10 ms).

    Args:
        sample_rate: Samples per second of the input.
        n_mels: Mel bands (the observation's height).
        window_seconds: How much of the recent past one observation covers.
        hop_seconds: Seconds between frames (the observation's time resolution).
        fft_seconds: Length of each frame's FFT (Hann window): longer resolves
            pitch better and time worse.
        channels: 1 (mono; a stereo input is averaged) or 2 (left, right).
        f_min: Lowest frequency of the bands, Hz.
        f_max: Highest, Hz; None for half the sample rate.
        floor_db: Level mapped to 0, in dB relative to a full-scale sine (mapped to 1).
    """

    def __init__(
        self,
        sample_rate: int = 16000,
        n_mels: int = 64,
        window_seconds: float = 0.5,
        hop_seconds: float = 0.01,
        fft_seconds: float = 0.032,
        channels: int = 1,
        f_min: float = 0.0,
        f_max: float | None = None,
        floor_db: float = -80.0,
    ) -> None:
        self.sample_rate = whole_number("interaction.audio.sample_rate", sample_rate, 1000)
        self.n_mels = whole_number("interaction.audio.n_mels", n_mels)
        if channels not in (1, 2) or isinstance(channels, bool):
            raise ValueError(f"interaction.audio.channels={channels!r}: expected 1 or 2")
        self.channels = channels
        self.window_samples = _samples("window_seconds", window_seconds, sample_rate)
        self.hop = _samples("hop_seconds", hop_seconds, sample_rate)
        self.n_fft = _samples("fft_seconds", fft_seconds, sample_rate)
        if self.n_fft < 16:
            raise ValueError(
                f"interaction.audio.fft_seconds={fft_seconds!r}: {self.n_fft} samples is too "
                "short a frame; expected at least 16"
            )
        if self.n_fft > self.window_samples:
            raise ValueError(
                f"interaction.audio.fft_seconds={fft_seconds!r} is longer than "
                f"window_seconds={window_seconds!r}; one frame must fit in the window"
            )
        nyquist = sample_rate / 2.0
        top = nyquist if f_max is None else float(f_max)
        if not 0.0 <= f_min < top <= nyquist:
            raise ValueError(
                f"interaction.audio f_min={f_min!r}, f_max={f_max!r}: expected "
                f"0 <= f_min < f_max <= {nyquist:g} (half the sample rate)"
            )
        if not floor_db < 0.0 or not math.isfinite(floor_db):
            raise ValueError(f"interaction.audio.floor_db={floor_db!r}: expected a number < 0")
        self.floor_db = float(floor_db)
        self.frames = 1 + (self.window_samples - self.n_fft) // self.hop
        self.filters = mel_filter_bank(sample_rate, self.n_fft, self.n_mels, f_min, top)
        """``(n_mels, n_fft // 2 + 1)``, the triangles."""
        self.centres = mel_to_hz(
            torch.linspace(
                float(hz_to_mel(torch.tensor(f_min))),
                float(hz_to_mel(torch.tensor(top))),
                self.n_mels + 2,
                dtype=torch.float64,
            )
        )[1:-1].tolist()
        """Each band's centre frequency, Hz, low to high."""
        self._window = torch.hann_window(self.n_fft, periodic=True)
        # A sine of amplitude A then totals A**2 over its bins: a full-scale sine is 0 dB.
        self._scale = 4.0 / (self.n_fft * float((self._window**2).sum()))

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(channels, n_mels, frames)``."""
        return (self.channels, self.n_mels, self.frames)

    def space(self) -> Box:
        """The observation's declared space."""
        return Box(self.shape, 0.0, 1.0)

    def band_of(self, frequency: float) -> int:
        """The band whose centre is nearest ``frequency`` Hz (tests, plots)."""
        return min(range(self.n_mels), key=lambda band: abs(self.centres[band] - frequency))

    def __call__(self, samples: torch.Tensor) -> torch.Tensor:
        """The spectrogram of ``samples``: float ``(channels_in, window_samples)``.

        Values are nominally in ``[-1, 1]``; louder input only saturates at 1. An input
        of the other channel count is averaged (to mono) or repeated (to stereo).

        Raises:
            ValueError: ``samples`` is not one window of 1 or 2 channels.
        """
        if samples.ndim != 2 or samples.shape[0] not in (1, 2):
            raise ValueError(
                f"a spectrogram takes (channels, samples) with 1 or 2 channels, got shape "
                f"{tuple(samples.shape)}"
            )
        if samples.shape[1] != self.window_samples:
            raise ValueError(
                f"a spectrogram takes windows of {self.window_samples} samples, got "
                f"{samples.shape[1]}"
            )
        samples = samples.to(torch.float32)
        if samples.shape[0] != self.channels:
            samples = (
                samples.mean(dim=0, keepdim=True)
                if self.channels == 1
                else samples.expand(2, -1).contiguous()
            )
        spectrum = torch.stft(
            samples,
            self.n_fft,
            hop_length=self.hop,
            window=self._window,
            center=False,
            return_complex=True,
        )
        power = spectrum.real.square() + spectrum.imag.square()
        mel = torch.matmul(self.filters, power) * self._scale
        decibels = 10.0 * torch.log10(torch.clamp(mel, min=_SILENCE))
        return torch.clamp(1.0 - decibels / self.floor_db, 0.0, 1.0).contiguous()


def _samples(key: str, seconds: float, sample_rate: int) -> int:
    """``seconds`` as a whole number of samples (at least one), naming the key."""
    count = round(positive_number(f"interaction.audio.{key}", seconds) * sample_rate)
    if count < 1:
        raise ValueError(
            f"interaction.audio.{key}={seconds!r}: shorter than one sample at {sample_rate} Hz"
        )
    return count
