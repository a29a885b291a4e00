"""The sound track of any media file (video or audio: mp4, mkv, webm, mp3, flac, ogg...).

Decoded whole, once, with PyAV (the ``av`` package, FFmpeg bundled in its wheels for
Linux, Windows and macOS; part of the ``audio`` extra), into float ``(channels,
samples)`` in ``[-1, 1]``, as the WAV loader does: a replay then costs one slice per
step, never a decode.

The rate is converted while decoding, by FFmpeg's resampler, frame by frame: a track
never exists whole at the file's own rate. That matters for video, whose sound is
usually 48 kHz: an hour of it is 1.4 GB of float32 at 48 kHz and 0.46 GB at 16 kHz,
and converting the whole track at once by FFT (:func:`ami.interaction.io.audio.resample`,
which the WAV path keeps) would need about six times the track (measured: 1.5 GB
above the process for five minutes of 48 kHz stereo, against 90 MB here).

The package is imported when a file is first decoded, so everything else (the WAV
path included) works without it.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

MEDIA_INSTALL_HINT = 'pip install -e ".[audio]"'
"""Where PyAV comes from: the ``audio`` extra."""


@dataclass(frozen=True)
class Track:
    """A decoded sound track.

    Attributes:
        samples: Float ``(channels, samples)`` in ``[-1, 1]``.
        rate: Samples per second.
        start: Seconds on the video's clock at which ``samples[:, 0]`` sounds: the
            track's first timestamp minus the start of the file's first video stream
            (whose frames OpenCV times from that start), 0 for a file without video.
            Without it, a video whose picture starts later than its sound (or the
            other way round) would be heard early (or late) by that gap.
    """

    samples: npt.NDArray[np.float32]
    rate: int
    start: float


def load_av(key: str, path: str | Path) -> Any:
    """The ``av`` module, or an error naming the key, the file and the extra to install."""
    try:
        return importlib.import_module("av")
    except ImportError as error:
        raise ImportError(
            f"{key}={str(path)!r}: reading this file's sound needs PyAV (only 16-bit PCM "
            f"WAV files are read without it); install it with: {MEDIA_INSTALL_HINT}"
        ) from error


def av_installed() -> bool:
    """Whether PyAV can be imported (a WAV that ``wave`` cannot read then still plays)."""
    try:
        importlib.import_module("av")
    except ImportError:
        return False
    return True


def _audio_stream(container: Any, key: str, path: str | Path) -> Any:
    if not container.streams.audio:
        kinds = sorted({stream.type for stream in container.streams}) or ["no streams"]
        raise ValueError(
            f"{key}={str(path)!r}: the file has no audio track (it holds {', '.join(kinds)})"
        )
    return container.streams.best("audio") or container.streams.audio[0]


def _video_start(container: Any) -> float:
    """Seconds at which the first video stream starts: where OpenCV's frame times are 0."""
    if not container.streams.video:
        return 0.0
    stream = container.streams.video[0]  # the one OpenCV plays
    if stream.start_time is None or stream.time_base is None:
        return 0.0
    return float(stream.start_time * stream.time_base)


def require_audio_track(path: str | Path, key: str) -> None:
    """Refuse a file without an audio track, reading only its header (no decoding).

    Raises:
        ImportError: PyAV is not installed.
        ValueError: FFmpeg cannot read the file, or it has no audio track.
    """
    av = load_av(key, path)
    try:
        with av.open(str(path)) as container:
            _audio_stream(container, key, path)
    except av.error.FFmpegError as error:
        raise ValueError(f"{key}={str(path)!r}: FFmpeg cannot read this file ({error})") from None


def decode_track(path: str | Path, key: str, rate: int, channels: int) -> Track:
    """The file's audio track at ``rate`` Hz (its ``best`` one when it has several).

    Args:
        path: Any file FFmpeg reads.
        key: The config key that named the file, for error messages.
        rate: Samples per second wanted.
        channels: Channels wanted, 1 or 2. Only a track of more than 2 (5.1 and the
            like) is mixed down here, by FFmpeg's matrix (centre and surrounds into
            left and right); mono and stereo tracks keep their own channels, which the
            caller mixes the same way for every source.

    Raises:
        ImportError: PyAV is not installed.
        ValueError: FFmpeg cannot read the file, it has no audio track, or the track
            holds no samples.
    """
    av = load_av(key, path)
    try:
        with av.open(str(path)) as container:
            stream = _audio_stream(container, key, path)
            layout = None if stream.channels <= 2 else ("mono" if channels == 1 else "stereo")
            resampler = av.AudioResampler(format="fltp", layout=layout, rate=rate)
            chunks: list[npt.NDArray[np.float32]] = []
            first: float | None = None
            for frame in container.decode(stream):
                if first is None and frame.time is not None:
                    first = float(frame.time)
                chunks.extend(out.to_ndarray() for out in resampler.resample(frame))
            chunks.extend(out.to_ndarray() for out in resampler.resample(None))
            first = first or 0.0
            end = _track_end(stream)
            start = first - _video_start(container)
    except av.error.FFmpegError as error:
        raise ValueError(f"{key}={str(path)!r}: FFmpeg cannot decode its sound ({error})") from None
    samples = np.concatenate(chunks, axis=1) if chunks else np.zeros((channels, 0), np.float32)
    if end is not None and 0 < round((end - first) * rate) < samples.shape[1]:
        samples = samples[:, : round((end - first) * rate)]
    if samples.shape[1] == 0:
        raise ValueError(f"{key}={str(path)!r}: the audio track holds no samples")
    return Track(np.ascontiguousarray(np.clip(samples, -1.0, 1.0), dtype=np.float32), rate, start)


def _track_end(stream: Any) -> float | None:
    """Seconds at which the container says the track ends, where it says so (mp4 does).

    A codec that codes whole frames (AAC: 1024 samples) pads the last one; the
    container's duration tells where the sound really ends, so that a loop's seam comes
    where it would in the original (a WAV of the same sound), not a padding later.
    """
    if stream.duration is None or stream.time_base is None:
        return None
    return float(((stream.start_time or 0) + stream.duration) * stream.time_base)
