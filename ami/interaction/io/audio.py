"""Audio sensors: a live microphone (a loopback of VRChat's output) and sound files for replay.

A file is a 16-bit PCM WAV (read by the standard library's ``wave``, no extra needed)
or the sound track of any other media file, video included (decoded by PyAV,
:mod:`ami.interaction.io.media_audio`). Both sensors fill the ``audio`` modality with
the :class:`LogMelSpectrogram` of their last ``window_seconds`` (float ``(channels,
n_mels, frames)`` in ``[0, 1]``).

Threads: the system has three threads (main, inference, training) and a sensor adds
none of its own. A live device delivers its samples on PortAudio's callback thread,
which this module treats as an I/O helper and nothing more: it only copies each block
into the sensor's inbox. The inference thread, in :meth:`MicrophoneSensor.read`, takes
the whole inbox at once and leaves an empty one in its place (a reference swap under a
lock held for a few instructions, the pattern of :mod:`ami.data.collector`), and only
then builds the window and its spectrogram, which the callback never touches. So the
callback never waits on a step, a step never waits on the device, and nothing the
callback writes is shared with anything else. The same rule holds for any sensor that
needs a capture helper: it hands data over by take-and-leave-empty, and everything past
the hand-off runs on the inference thread.

The inbox keeps only what the next window can use: when the inference thread does not
read for a while (a pause), blocks older than one window are discarded as they are
superseded, so a long pause cannot fill memory. That is not lost experience: an
observation is always the latest window, and the samples are counted
(:attr:`MicrophoneSensor.discarded_samples`).
"""

from __future__ import annotations

import importlib
import logging
import math
import threading
import time
import wave
from collections import deque
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from typing_extensions import override

from ami.config_checks import positive_number
from ami.interaction.environment import WorldEnded
from ami.interaction.io.media_audio import MEDIA_INSTALL_HINT, av_installed, decode_track
from ami.interaction.io.sensor import Sensor
from ami.interaction.io.spectrogram import AUDIO, LogMelSpectrogram
from ami.interaction.spaces import Box
from ami.throttle import Throttle

logger = logging.getLogger(__name__)

Samples = npt.NDArray[np.float32]
"""Float samples, ``(channels, samples)`` unless said otherwise."""

INSTALL_HINT = MEDIA_INSTALL_HINT
"""Double quotes: the one spelling that works in cmd.exe, PowerShell and POSIX shells."""


def load_sounddevice() -> Any:
    """The ``sounddevice`` module, imported only when a microphone is set up.

    Raises:
        ImportError: The package is not installed (it is the optional extra ``audio``).
        RuntimeError: It is, but the PortAudio library it wraps is missing.
    """
    try:
        return importlib.import_module("sounddevice")
    except ImportError as error:
        raise ImportError(
            f"interaction.audio: the microphone needs the sounddevice package (PortAudio); "
            f"install it with: {INSTALL_HINT}"
        ) from error
    except OSError as error:  # installed, but no PortAudio on the system (Linux)
        raise RuntimeError(
            f"interaction.audio: sounddevice cannot load the PortAudio library ({error}). "
            "Linux: install it with the system's packages (Debian/Ubuntu: sudo apt install "
            f"libportaudio2); Windows and macOS: reinstall with {INSTALL_HINT}, whose "
            "wheel brings PortAudio along"
        ) from error


def describe_input_devices(sounddevice: Any) -> str:
    """The input devices PortAudio reports, one per line, for error messages."""
    try:
        devices = list(sounddevice.query_devices())
    except Exception as error:  # the listing itself failing must not hide the first error
        return f"  (sounddevice could not list devices: {error})"
    lines = [
        f"  {device.get('index', index)}: {device['name']!r}{_host_api(sounddevice, device)} "
        f"({device['max_input_channels']} input channels, "
        f"{float(device.get('default_samplerate', 0)):g} Hz)"
        for index, device in enumerate(devices)
        if device.get("max_input_channels", 0) > 0
    ]
    return "\n".join(lines) or "  (none: PortAudio sees no input device on this machine)"


def _host_api(sounddevice: Any, device: Mapping[str, Any]) -> str:
    """``", MME"``: the same device appears once per host API (Windows), names alike."""
    try:
        return f", {sounddevice.query_hostapis(device['hostapi'])['name']}"
    except Exception:  # a listing without host APIs still lists the devices
        return ""


def parse_device(device: int | str | None) -> int | str | None:
    """A device index (``3``, ``"3"``), (part of) a device's name, or None for the default."""
    if device is None:
        return None
    if isinstance(device, bool) or not isinstance(device, int | str):
        raise ValueError(
            f"interaction.audio.device must be a device index, (part of) a device name or "
            f"null for the system's default input, got {device!r}"
        )
    if isinstance(device, str):
        if not device.strip():
            raise ValueError("interaction.audio.device is empty; use null for the default input")
        return int(device) if device.strip().isdigit() else device
    if device < 0:
        raise ValueError(f"interaction.audio.device index must be >= 0, got {device}")
    return device


class MicrophoneSensor(Sensor):
    """An input device through PortAudio (``sounddevice``): Linux, Windows and macOS.

    For VRChat, the device is a loopback of the game's output (docs/vrchat.md).

    Args:
        device: Device index, (part of) its name as PortAudio lists it, or None for
            the system's default input.
        sample_rate: Samples per second asked of the device (and of the spectrogram).
        channels: 1 (mono) or 2 (stereo: a loopback keeps the game's left and right).
        n_mels: Mel bands of the spectrogram.
        window_seconds: Seconds of sound in one observation.
        hop_seconds: Seconds between the spectrogram's frames.
        fft_seconds: Length of each frame's FFT.
        block_seconds: Seconds of audio per callback (smaller: fresher observations,
            more callbacks).
        start_timeout: Seconds :meth:`setup` waits for the first block before failing.
        stall_timeout: Seconds without a block after which :meth:`read` fails, rather
            than return an ever older window as if it were now.
        require_device: Refuse ``device=None``: where the wanted input is a loopback
            (VRChat), the system's default input is a microphone, the wrong sound.
    """

    modality = AUDIO
    time_scalable = False  # a live device runs on real time

    def __init__(
        self,
        device: int | str | None = None,
        sample_rate: int = 16000,
        channels: int = 1,
        n_mels: int = 64,
        window_seconds: float = 0.5,
        hop_seconds: float = 0.01,
        fft_seconds: float = 0.032,
        block_seconds: float = 0.01,
        start_timeout: float = 5.0,
        stall_timeout: float = 2.0,
        require_device: bool = False,
    ) -> None:
        self.device = parse_device(device)
        self.require_device = bool(require_device)
        self.spectrogram = LogMelSpectrogram(
            sample_rate, n_mels, window_seconds, hop_seconds, fft_seconds, channels
        )
        self.sample_rate = sample_rate
        self.channels = channels
        block = positive_number("interaction.audio.block_seconds", block_seconds)
        self.block_samples = max(1, round(block * sample_rate))
        self.start_timeout = positive_number("interaction.audio.start_timeout", start_timeout)
        self.stall_timeout = positive_number("interaction.audio.stall_timeout", stall_timeout)
        self.clock: Callable[[], float] = time.monotonic
        """Seconds, for the stall check (replaceable in tests)."""
        self._window_samples = self.spectrogram.window_samples
        # Written by the callback thread, under the lock; taken whole by the reader.
        self._lock = threading.Lock()
        self._inbox: deque[Samples] = deque()
        self._inbox_samples = 0
        self._last_arrival = -math.inf
        self._status_flags = 0
        self._discarded = 0
        self._arrived = threading.Event()
        # The inference thread's own: the window and what it has taken.
        self._window: Samples = np.zeros((channels, self._window_samples), dtype=np.float32)
        self._taker: threading.Thread | None = None
        self._stream: Any = None
        self._ended = threading.Event()
        self._flag_warnings = Throttle(10.0)
        self.taken_samples = 0
        """Samples the inference thread has taken so far."""
        self.discarded_samples = 0
        """Samples superseded in the inbox before a take (see the module's docstring)."""

    @override
    def space(self) -> Box:
        return self.spectrogram.space()

    @override
    def setup(self) -> None:
        """Open the device and wait for its first block; fail naming the key and the devices."""
        if self.device is None and self.require_device:
            raise ValueError(
                "interaction.audio.device is required: the index or (part of) the name of "
                "the loopback input device, as `python -m sounddevice` lists them"
            )
        sounddevice = load_sounddevice()
        index = self._find_device(sounddevice)
        try:
            sounddevice.check_input_settings(
                device=index, channels=self.channels, samplerate=self.sample_rate, dtype="float32"
            )
        except Exception as error:
            raise RuntimeError(
                f"interaction.audio.device={self.device!r}: the device refuses "
                f"interaction.audio.sample_rate={self.sample_rate} with "
                f"interaction.audio.channels={self.channels} ({error}); try its default "
                f"rate. Input devices:\n{describe_input_devices(sounddevice)}"
            ) from None
        self._taker = threading.current_thread()
        self._ended.clear()
        self._arrived.clear()
        self._last_arrival = -math.inf
        stream = sounddevice.InputStream(
            device=index,
            samplerate=self.sample_rate,
            channels=self.channels,
            dtype="float32",
            blocksize=self.block_samples,
            callback=self.audio_callback,
            finished_callback=self._ended.set,
        )
        self._stream = stream
        try:
            stream.start()
            if not self._arrived.wait(self.start_timeout):
                raise RuntimeError(
                    f"interaction.audio.device={self.device!r}: the device opened but "
                    f"delivered no sound in {self.start_timeout:g} s (start_timeout); check "
                    "that it is the capture side of the loopback and that nothing else "
                    "holds it exclusively"
                )
        except BaseException:
            self.teardown()
            raise

    def _find_device(self, sounddevice: Any) -> Any:
        """The device's index as PortAudio numbers it, or an error listing the inputs."""
        try:
            info = sounddevice.query_devices(self.device, "input")
        except Exception as error:  # ValueError (none or several match), PortAudioError
            which = "no default input: " if self.device is None else ""
            raise RuntimeError(
                f"interaction.audio.device={self.device!r}: {which}{error}. Set "
                "interaction.audio.device to the index or (words of) the name of one of the "
                f"input devices sounddevice reports:\n{describe_input_devices(sounddevice)}"
            ) from None
        if int(info["max_input_channels"]) < self.channels:
            raise RuntimeError(
                f"interaction.audio.device={self.device!r}: {info['name']!r} has "
                f"{info['max_input_channels']} input channel(s); interaction.audio.channels="
                f"{self.channels} needs more. Input devices:\n{describe_input_devices(sounddevice)}"
            )
        return info.get("index", self.device)

    @override
    def teardown(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            try:
                stream.stop()
            finally:
                stream.close()

    def audio_callback(self, indata: Any, frames: int, time_info: Any, status: Any) -> None:
        """PortAudio's thread: copy the block into the inbox; nothing else happens here.

        Args:
            indata: ``(frames, channels)`` float32, reused by PortAudio after the return.
            frames: Frames in the block.
            time_info: PortAudio's timestamps (unused).
            status: PortAudio's flags (an input overflow lost samples): counted, and
                logged by the inference thread.
        """
        block = np.array(indata, dtype=np.float32).reshape(frames, -1).T.copy()
        now = self.clock()
        with self._lock:
            self._inbox.append(block)
            self._inbox_samples += frames
            while len(self._inbox) > 1 and (
                self._inbox_samples - self._inbox[0].shape[1] >= self._window_samples
            ):
                superseded = self._inbox.popleft()
                self._inbox_samples -= superseded.shape[1]
                self._discarded += superseded.shape[1]
            if status:
                self._status_flags += 1
            self._last_arrival = now
        self._arrived.set()

    def take(self) -> list[Samples]:
        """Take every block that arrived, leaving an empty inbox (the reader's thread only).

        Raises:
            RuntimeError: Called from another thread than the one that set the sensor up.
        """
        current = threading.current_thread()
        if self._taker is None:
            self._taker = current
        elif current is not self._taker:
            raise RuntimeError(
                f"MicrophoneSensor.take: thread {current.name!r} may not take the audio "
                f"inbox; thread {self._taker.name!r} (the one that set it up) takes it"
            )
        empty: deque[Samples] = deque()
        with self._lock:
            blocks, self._inbox = self._inbox, empty
            self._inbox_samples = 0
            flags, self._status_flags = self._status_flags, 0
            discarded, self._discarded = self._discarded, 0
        self.discarded_samples += discarded
        if flags and self._flag_warnings.ready():
            logger.warning(
                "interaction.audio.device=%r: PortAudio flagged %d block(s) (input "
                "overflow: samples lost while the system was busy)",
                self.device,
                flags,
            )
        return list(blocks)

    def window(self) -> Samples:
        """The latest window, ``(channels, window_samples)``, as :meth:`read` last built it."""
        return self._window.copy()

    @override
    def read(self) -> torch.Tensor:
        """The spectrogram of the latest window, after taking what arrived since the last read.

        Raises:
            RuntimeError: Not set up, the stream ended, or nothing arrived for
                ``stall_timeout`` seconds.
        """
        if self._stream is None:
            raise RuntimeError("MicrophoneSensor.read() called before setup() or after teardown()")
        if self._ended.is_set():
            raise RuntimeError(
                f"interaction.audio.device={self.device!r}: the audio stream stopped (the "
                "device was unplugged or its server restarted)"
            )
        blocks = self.take()
        if blocks:
            self._append(np.concatenate(blocks, axis=1))
        else:
            with self._lock:
                last = self._last_arrival
            silent_for = self.clock() - last
            if silent_for > self.stall_timeout:
                raise RuntimeError(
                    f"interaction.audio.device={self.device!r}: no sound arrived for "
                    f"{silent_for:.1f} s (stall_timeout={self.stall_timeout:g}); the device "
                    "stopped delivering"
                )
        return self.spectrogram(torch.from_numpy(self._window))

    def _append(self, chunk: Samples) -> None:
        """Slide the window on by ``chunk``, ``(channels, n)``."""
        count = chunk.shape[1]
        self.taken_samples += count
        if count >= self._window_samples:
            self._window = np.ascontiguousarray(chunk[:, -self._window_samples :])
        else:
            self._window = np.concatenate([self._window[:, count:], chunk], axis=1)


class EndOfAudio(WorldEnded):
    """The sound file was played to its end and ``loop`` is off."""


def read_wav(path: str | Path) -> tuple[Samples, int]:
    """A 16-bit PCM WAV file (mono or stereo) as float ``(channels, samples)`` in ``[-1, 1)``.

    Returns:
        The samples and the file's sample rate.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"interaction.audio.path={str(path)!r}: no such WAV file")
    try:
        with wave.open(str(path), "rb") as wav:
            width, channels = wav.getsampwidth(), wav.getnchannels()
            rate, count = wav.getframerate(), wav.getnframes()
            if width != 2 or channels not in (1, 2):
                raise ValueError(
                    f"interaction.audio.path={str(path)!r}: {8 * width}-bit, {channels} "
                    "channel(s); expected 16-bit PCM, mono or stereo (convert with e.g. "
                    "ffmpeg -i in.wav -c:a pcm_s16le out.wav)"
                )
            raw = wav.readframes(count)
    except (wave.Error, EOFError) as error:
        raise ValueError(
            f"interaction.audio.path={str(path)!r}: not a 16-bit PCM WAV file ({error})"
        ) from None
    pcm = np.frombuffer(raw, dtype="<i2").reshape(-1, channels)
    if len(pcm) == 0:
        raise ValueError(f"interaction.audio.path={str(path)!r}: the file holds no samples")
    return (pcm.T.astype(np.float32) / 32768.0), rate


def is_wav(path: str | Path) -> bool:
    """Whether the file starts as a RIFF WAVE does, whatever its name ends with."""
    with open(path, "rb") as file:
        header = file.read(12)
    return header[:4] == b"RIFF" and header[8:12] == b"WAVE"


def load_track(path: str | Path, rate: int, channels: int) -> Samples:
    """A sound file as float ``(channels, samples)`` at ``rate`` Hz, for replay.

    A 16-bit PCM WAV is read by ``wave``, exactly and without PyAV; anything else (a
    video's sound track, mp3, flac, ogg, a WAV of another sample format) is decoded by
    PyAV, whose absence is then named with the extra to install.

    Raises:
        ImportError: The file needs PyAV, which is not installed.
        ValueError: The file cannot be read, has no audio track or holds no samples.
    """
    key = "interaction.audio.path"
    if is_wav(path):
        try:
            samples, native = read_wav(path)
        except ValueError as error:  # 24-bit, float, 8-bit, 5.1...: PyAV reads those
            if not av_installed():
                raise ValueError(
                    f"{error}; or install PyAV, which reads any WAV: {MEDIA_INSTALL_HINT}"
                ) from None
        else:
            return to_channels(resample(samples, native, rate), channels)
    return to_channels(decode_track(path, key, rate, channels).samples, channels)


def to_channels(samples: Samples, channels: int) -> Samples:
    """``(channels, n)``: stereo averaged into mono, or mono doubled into stereo."""
    if samples.shape[0] == channels:
        return np.ascontiguousarray(samples, dtype=np.float32)
    if channels == 1:
        return np.ascontiguousarray(samples.mean(axis=0, keepdims=True), dtype=np.float32)
    if samples.shape[0] == 1:
        return np.ascontiguousarray(np.repeat(samples, channels, axis=0), dtype=np.float32)
    raise ValueError(f"{samples.shape[0]} channels cannot become {channels}")


def resample(samples: Samples, rate: int, target: int) -> Samples:
    """``samples`` at ``target`` Hz: band-limited (FFT), once, when a file is loaded."""
    if rate == target:
        return samples
    count = samples.shape[1]
    out = max(1, round(count * target / rate))
    spectrum = torch.fft.rfft(torch.from_numpy(samples).to(torch.float64), dim=1)
    bins = out // 2 + 1
    kept = spectrum[:, : min(bins, spectrum.shape[1])]
    resampled = torch.fft.irfft(kept, n=out, dim=1) * (out / count)
    result: Samples = np.ascontiguousarray(resampled.numpy(), dtype=np.float32)
    return result


class AudioFileSensor(Sensor):
    """A sound file replayed step by step: each read plays one step's worth of samples.

    The ``k``-th read returns the window that ends ``(k + 1) * step_seconds`` into the
    file (silence before its start), so a replay follows the steps, however fast they
    come (``time_scale``). At the end the file starts over when ``loop`` is on (the
    window across the seam holds the end and then the start, and the jump is reported
    as a break of continuity); otherwise the run stops cleanly (:class:`EndOfAudio`).

    The file is a WAV or any media file with sound, a video's included (its audio
    track alone; sample 0 is the track's first sample). To hear a video in step with
    its frames, use ``interaction=video interaction.audio.enabled=true``
    (:class:`~ami.interaction.io.video_sound.VideoSoundSensor`), which follows the
    frames' own times rather than a fixed step.

    Args:
        path: A 16-bit PCM WAV file (mono or stereo, read without extras) or any other
            file with an audio track (mp4, mkv, webm, mp3, flac, ogg...: PyAV, the
            ``audio`` extra). Another sample rate is resampled.
        step_seconds: Sound per step: the inference interval (``threads.inference.interval``).
        loop: Start over after the end.
        sample_rate: Rate of the spectrogram.
        channels: 1 (stereo files are averaged) or 2 (mono files are doubled).
        n_mels: Mel bands.
        window_seconds: Seconds of sound in one observation.
        hop_seconds: Seconds between frames.
        fft_seconds: Length of each frame's FFT.
    """

    modality = AUDIO
    time_scalable = True

    def __init__(
        self,
        path: str,
        step_seconds: float = 0.1,
        loop: bool = True,
        sample_rate: int = 16000,
        channels: int = 1,
        n_mels: int = 64,
        window_seconds: float = 0.5,
        hop_seconds: float = 0.01,
        fft_seconds: float = 0.032,
    ) -> None:
        if not isinstance(path, str | Path) or not str(path):
            raise ValueError(
                f"interaction.audio.path must be the path of a sound or video file, got {path!r}"
            )
        if not Path(path).is_file():
            raise FileNotFoundError(
                f"interaction.audio.path={str(path)!r}: no such sound or video file"
            )
        self.path = str(path)
        self.spectrogram = LogMelSpectrogram(
            sample_rate, n_mels, window_seconds, hop_seconds, fft_seconds, channels
        )
        self.step_samples = round(
            positive_number("interaction.audio.step_seconds", step_seconds) * sample_rate
        )
        if self.step_samples < 1:
            raise ValueError(
                f"interaction.audio.step_seconds={step_seconds!r}: shorter than one sample"
            )
        self.loop = bool(loop)
        self.position = 0
        """Samples played in this pass: the window of the last read ends here."""
        self.passes = 0
        """Complete passes over the file so far."""
        self._samples: Samples | None = None
        self._cut = False
        self._resume: tuple[str, int, int] | None = None

    @override
    def space(self) -> Box:
        return self.spectrogram.space()

    @override
    def setup(self) -> None:
        self._samples = load_track(
            self.path, self.spectrogram.sample_rate, self.spectrogram.channels
        )
        length = self._samples.shape[1]
        if not self.loop and length < self.step_samples:
            raise ValueError(
                f"interaction.audio.path={self.path!r}: {length} samples, shorter than one "
                f"step ({self.step_samples}) with loop off"
            )
        if self._resume is not None:
            name, position, passes = self._resume
            self._resume = None
            if name != Path(self.path).name or not 0 <= position <= length:
                logger.warning(
                    "interaction.audio.path=%r: the checkpoint was at sample %d of %r; this "
                    "file differs, so it plays from its start",
                    self.path,
                    position,
                    name,
                )
            else:
                self.position, self.passes = position, passes

    @override
    def teardown(self) -> None:
        self._samples = None

    @override
    def state_dict(self) -> dict[str, Any]:
        """Where the replay is: the file's name, the samples played in this pass, the passes."""
        return {"file": Path(self.path).name, "position": self.position, "passes": self.passes}

    @override
    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self._resume = (str(state["file"]), int(state["position"]), int(state["passes"]))

    @override
    def read(self) -> torch.Tensor:
        if self._samples is None:
            raise RuntimeError("AudioFileSensor.read() called before setup() or after teardown()")
        length = self._samples.shape[1]
        end = self.position + self.step_samples
        if end > length:
            if not self.loop:
                raise EndOfAudio(
                    f"interaction.audio.path={self.path!r}: played to its end (loop is off)"
                )
            self.passes += end // length
            end %= length
            self._cut = True
        self.position = end
        return self.spectrogram(torch.from_numpy(self.window()))

    def window(self) -> Samples:
        """The samples of the last read's window, ``(channels, window_samples)``."""
        if self._samples is None:
            raise RuntimeError("AudioFileSensor.window() called before setup()")
        length = self._samples.shape[1]
        end = self.passes * length + self.position  # on the looped timeline
        index = np.arange(end - self.spectrogram.window_samples, end)
        window = self._samples[:, index % length]
        window[:, index < 0] = 0.0  # before the first pass: silence
        return window

    @override
    def broke_continuity(self) -> bool:
        """True once after the file started over."""
        cut, self._cut = self._cut, False
        return cut
