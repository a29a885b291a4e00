"""A recorded video's own sound, heard in step with its frames (``interaction=video``).

The video world shows the next frame at each step, so a step lasts one frame of the
video (1/fps of its time), not the inference interval. The sound follows the picture,
not the step: after the frame sensor has read, :class:`VideoSoundSensor` asks it which
file and which moment that frame shows (:meth:`VideoFilesSensor.now_playing`, the
frame's timestamp in the container), and observes the ``window_seconds`` of the file's
audio track that end at that very moment. Picture and sound stay together through
everything the frames do, because the frames decide it: a variable frame rate, a
folder's move to the next file, a loop back to the first, a resume from a checkpoint
(the frame sensor's state alone places both, so the sound keeps none of its own).

Frames are decoded by OpenCV and sound by PyAV, two readers of one file; both time it
from the container's timestamps, so a video stream that starts later than its sound (or
earlier) is heard at its own moment (:attr:`~ami.interaction.io.media_audio.Track.start`).
The window before the track's first sample and after its last is silence: at the first
frame of a file nothing has been heard yet, and a picture that outlasts its sound is
silent.

A track is decoded whole when its file starts playing (the first at setup; a folder's
next one on the step that reaches it, which is then slower by the decode: a third of a
second for five minutes of 48 kHz stereo AAC), and only the playing file's is kept.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from typing_extensions import override

from ami.interaction.io.audio import Samples, to_channels
from ami.interaction.io.media_audio import Track, decode_track, require_audio_track
from ami.interaction.io.sensor import Sensor
from ami.interaction.io.spectrogram import AUDIO, LogMelSpectrogram
from ami.interaction.io.video_files import VideoFilesSensor, list_videos
from ami.interaction.spaces import Box

logger = logging.getLogger(__name__)

KEY = "interaction.camera"
"""The key naming the videos, whose sound this is."""

SETTINGS = ("sample_rate", "channels", "n_mels", "window_seconds", "hop_seconds", "fft_seconds")
"""The keys of ``interaction.audio`` (beside ``enabled``) that :class:`VideoSoundSensor` takes."""


class VideoSoundSensor(Sensor):
    """The sound track of the video a :class:`VideoFilesSensor` plays, at its frame's moment.

    Read it after the frame sensor in the same step (list it after that sensor in the
    world's sensors; :func:`video_sensors` does). Every video must have an audio track:
    one without is refused here, when the world is built, before anything starts.

    Args:
        video: The frame sensor whose frames this sound follows.
        sample_rate: Rate of the spectrogram (each track is resampled to it).
        channels: 1 (stereo tracks are averaged) or 2 (mono tracks are doubled).
        n_mels: Mel bands.
        window_seconds: Seconds of sound in one observation.
        hop_seconds: Seconds between frames of the spectrogram.
        fft_seconds: Length of each frame's FFT.

    Raises:
        ImportError: PyAV (the ``audio`` extra) is not installed.
        ValueError: A video has no audio track, or FFmpeg cannot read it.
    """

    modality = AUDIO
    time_scalable = True  # the frames' timeline, not the wall clock

    def __init__(
        self,
        video: VideoFilesSensor,
        sample_rate: int = 16000,
        channels: int = 2,
        n_mels: int = 64,
        window_seconds: float = 0.5,
        hop_seconds: float = 0.01,
        fft_seconds: float = 0.032,
    ) -> None:
        self.video = video
        self.spectrogram = LogMelSpectrogram(
            sample_rate, n_mels, window_seconds, hop_seconds, fft_seconds, channels
        )
        for path in list_videos(video.path):
            try:
                require_audio_track(path, KEY)
            except ValueError as error:
                raise ValueError(
                    f"interaction.audio.enabled=true: {error}; the video world hears each "
                    "video's own sound, so every video needs one (or set "
                    "interaction.audio.enabled=false)"
                ) from None
        self._file: Path | None = None
        self._track: Track | None = None
        self._window: Samples = np.zeros(
            (channels, self.spectrogram.window_samples), dtype=np.float32
        )
        self.end_sample = 0
        """Where the last read's window ends in the playing file's track."""

    @override
    def space(self) -> Box:
        return self.spectrogram.space()

    @override
    def setup(self) -> None:
        """Decode the first file's track now, so that the first step pays no decode."""
        self._file, self._track = None, None
        current = self.video.current_video
        if current is not None:
            self._load(current)

    @override
    def teardown(self) -> None:
        self._file, self._track = None, None

    def _load(self, path: Path) -> Track:
        rate, channels = self.spectrogram.sample_rate, self.spectrogram.channels
        track = decode_track(path, KEY, rate, channels)
        track = Track(to_channels(track.samples, channels), track.rate, track.start)
        self._file, self._track = path, track
        logger.debug(
            "sound of %s: %d samples from %.3f s", path, track.samples.shape[1], track.start
        )
        return track

    @override
    def read(self) -> torch.Tensor:
        """The spectrogram of the window ending at the moment of the frame just read.

        Raises:
            RuntimeError: The frame sensor has read no frame since its setup (this
                sensor is listed before it, or read on its own).
        """
        path, seconds = self.video.now_playing()
        track = self._track if path == self._file and self._track is not None else None
        if track is None:
            track = self._load(path)
        samples = track.samples
        end = round((seconds - track.start) * track.rate)
        size = self.spectrogram.window_samples
        window = np.zeros((samples.shape[0], size), dtype=np.float32)
        first, last = max(end - size, 0), min(end, samples.shape[1])
        if first < last:  # the part of the window that the track covers
            window[:, first - (end - size) : last - (end - size)] = samples[:, first:last]
        self.end_sample = end
        self._window = window
        return self.spectrogram(torch.from_numpy(window))

    def window(self) -> Samples:
        """The samples of the last read's window, ``(channels, window_samples)``."""
        return self._window.copy()

    @override
    def state_dict(self) -> dict[str, Any]:
        """Nothing: the frame sensor's state (file and frame) places the sound too."""
        return {}

    @override
    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Nothing to restore (see :meth:`state_dict`)."""


def video_sensors(
    path: str,
    width: int = 84,
    height: int = 84,
    loop: bool = True,
    audio: Mapping[str, Any] | None = None,
) -> VideoFilesSensor | list[Sensor]:
    """The video world's sensors: the frames, and their own sound when ``audio.enabled``.

    The config's hook (``conf/interaction/video.yaml``): the sound must follow this very
    frame sensor, which a config cannot share between two entries, so one call builds
    both.

    Args:
        path: A video file, or a folder whose videos are played in name order.
        width: Observation width in pixels.
        height: Observation height in pixels.
        loop: Start again from the first video after the last one.
        audio: ``interaction.audio``: ``enabled`` and the spectrogram's settings
            (:class:`VideoSoundSensor`'s arguments); None or ``enabled: false``: the
            frames alone, exactly the world without sound.

    Raises:
        ValueError: ``enabled`` is not a boolean, or a setting is unknown or bad.
    """
    frames = VideoFilesSensor(path, width=width, height=height, loop=loop)
    settings = dict(audio or {})
    enabled = settings.pop("enabled", False)
    if not isinstance(enabled, bool):
        raise ValueError(f"interaction.audio.enabled must be true or false, got {enabled!r}")
    if not enabled:
        return frames
    unknown = sorted(set(settings) - set(SETTINGS))
    if unknown:
        raise ValueError(
            f"interaction.audio: unknown setting(s) {unknown} for the video world's sound; "
            f"it takes enabled and {', '.join(SETTINGS)}"
        )
    return [frames, VideoSoundSensor(frames, **settings)]
