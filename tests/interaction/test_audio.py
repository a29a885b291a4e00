"""Audio as an observation: the spectrogram, WAV replay, the world's sound, the microphone.

Replaying other media files, and a video's own sound: test_video_audio.py.
"""

from __future__ import annotations

import importlib
import json
import math
import os
import subprocess
import sys
import threading
import time
import wave
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

import ami.experiment  # noqa: F401  (registers what Hydra needs, as scripts/launch.py does)
from ami.interaction.io import (
    AUDIO,
    AudioFileSensor,
    CameraSensor,
    EndOfAudio,
    LogMelSpectrogram,
    MicrophoneSensor,
)
from ami.interaction.io import audio as audio_module
from ami.interaction.io.actions import inputs_from_action
from ami.interaction.io.frames import rgb_to_observation
from ami.interaction.spaces import check_observation, image_space
from ami.interaction.worlds import SensorActuatorEnvironment, SimEnvironment, SimWorld
from ami.interaction.worlds.sim.sound import SimSound, sim_sound
from tests.interaction.world_parts import random_actions

CONF = Path(__file__).resolve().parents[2] / "conf"
RATE = 16000
DEADLINE = 60.0
"""Seconds a threaded test may take before it counts as a deadlock."""
NOOP = torch.tensor([0, 0, 0, 0, 0])
FORWARD = torch.tensor([1, 0, 0, 0, 0])
BACKWARD = torch.tensor([2, 0, 0, 0, 0])
TURN = torch.tensor([0, 0, 1, 0, 0])
RUN = torch.tensor([1, 0, 0, 0, 1])
MIDDLE_OF_A = (4.5, 3.5)
"""Room "a" spans cells x 1..7, y 1..6: its middle is far from every wall."""


def tone(frequency: float, seconds: float = 0.5, amplitude: float = 1.0) -> torch.Tensor:
    t = torch.arange(round(seconds * RATE), dtype=torch.float64) / RATE
    return (amplitude * torch.sin(2 * math.pi * frequency * t)).to(torch.float32)[None]


def write_wav(
    path: Path, samples: np.ndarray, rate: int = RATE, width: int = 2, channels: int = 1
) -> Path:
    """Write int16 ``samples`` (``(n,)`` or ``(n, channels)``) with the stdlib's wave."""
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(channels)
        wav.setsampwidth(width)
        wav.setframerate(rate)
        wav.writeframes(np.ascontiguousarray(samples).tobytes())
    return path


# -- the spectrogram ---------------------------------------------------------------------


@pytest.mark.parametrize("frequency", [150.0, 440.0, 1000.0, 3000.0, 6500.0])
def test_a_tone_peaks_in_the_mel_band_of_its_frequency(frequency: float) -> None:
    spectrogram = LogMelSpectrogram()
    image = spectrogram(tone(frequency))
    assert image.shape == spectrogram.shape == (1, 64, 47)
    per_band = image.mean(dim=(0, 2))
    assert int(per_band.argmax()) == spectrogram.band_of(frequency)
    # Every frame hears it, not just their average.
    assert (image[0].argmax(dim=0) == spectrogram.band_of(frequency)).all()


def test_the_scale_is_absolute_from_silence_to_a_full_scale_sine() -> None:
    spectrogram = LogMelSpectrogram()
    band = spectrogram.band_of(1000.0)
    loud = spectrogram(tone(1000.0, amplitude=1.0))[0, band].mean()
    quiet = spectrogram(tone(1000.0, amplitude=0.01))[0, band].mean()  # -40 dB
    silence = spectrogram(torch.zeros(1, spectrogram.window_samples))
    assert loud == pytest.approx(1.0, abs=0.05)
    assert quiet == pytest.approx(0.5, abs=0.05)
    assert silence.max() == 0.0
    clipped = spectrogram(tone(1000.0, amplitude=30.0))
    spectrogram.space().check("audio", clipped)  # in [0, 1] even when too loud


def test_stereo_keeps_the_ears_apart_and_mono_mixes_them() -> None:
    left_only = torch.cat([tone(1000.0), torch.zeros(1, RATE // 2)])
    stereo = LogMelSpectrogram(channels=2)(left_only)
    assert stereo.shape == (2, 64, 47)
    assert stereo[0].max() > 0.9 and stereo[1].max() == 0.0
    mono = LogMelSpectrogram(channels=1)(left_only)
    band = LogMelSpectrogram().band_of(1000.0)
    # The average halves the amplitude: 6 dB less, 6/80 of the range.
    assert stereo[0, band].mean() - mono[0, band].mean() == pytest.approx(6.02 / 80, abs=0.01)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"n_mels": 256}, r"interaction.audio.n_mels=256: mel band\(s\) \[0"),
        ({"fft_seconds": 1.0}, r"fft_seconds=1.0 is longer than window_seconds"),
        ({"channels": 3}, r"interaction.audio.channels=3: expected 1 or 2"),
        ({"window_seconds": -1}, r"interaction.audio.window_seconds=-1: expected a number > 0"),
    ],
)
def test_bad_spectrogram_settings_name_their_key(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        LogMelSpectrogram(**settings)


# -- WAV replay --------------------------------------------------------------------------


def ramp_file(tmp_path: Path, count: int) -> tuple[Path, np.ndarray]:
    """A mono file whose sample ``i`` is ``i + 1``: every window says where it was taken."""
    values = np.arange(1, count + 1, dtype=np.int16)
    return write_wav(tmp_path / "ramp.wav", values), values.astype(np.float32) / 32768.0


def expected_window(values: np.ndarray, end: int, size: int) -> np.ndarray:
    """The ``size`` samples before ``end`` on the looped timeline, silence before the start."""
    index = np.arange(end - size, end)
    return np.where(index >= 0, values[index % len(values)], 0.0)


def test_a_wav_file_plays_one_step_of_samples_per_read(tmp_path: Path) -> None:
    path, values = ramp_file(tmp_path, 20000)
    sensor = AudioFileSensor(str(path), step_seconds=0.1)
    assert sensor.time_scalable and sensor.modality == AUDIO
    sensor.setup()
    window = sensor.spectrogram.window_samples
    for step in range(1, 13):
        observation = sensor.read()
        sensor.space().check("audio", observation)
        assert sensor.position == 1600 * step
        assert np.array_equal(sensor.window()[0], expected_window(values, 1600 * step, window))
        assert not sensor.broke_continuity()
    sensor.teardown()


def test_a_looping_wav_starts_over_and_says_so_once(tmp_path: Path) -> None:
    path, values = ramp_file(tmp_path, 5000)  # 3 steps of 1600, then the seam
    sensor = AudioFileSensor(str(path), step_seconds=0.1, loop=True)
    sensor.setup()
    for _ in range(3):
        sensor.read()
    assert (sensor.position, sensor.passes) == (4800, 0)
    sensor.read()  # 6400 samples in: 1400 into the second pass
    assert (sensor.position, sensor.passes) == (1400, 1)
    assert sensor.broke_continuity() and not sensor.broke_continuity()
    # Across the seam: the end of the file, then its start (no silence in between).
    assert np.array_equal(sensor.window()[0], expected_window(values, 6400, 8000))
    assert sensor.window()[0, -1] == values[1399]


def test_without_loop_the_end_of_the_file_ends_the_world(tmp_path: Path) -> None:
    path, _ = ramp_file(tmp_path, 5000)
    sensor = AudioFileSensor(str(path), step_seconds=0.1, loop=False)
    sensor.setup()
    for _ in range(3):
        sensor.read()
    with pytest.raises(EndOfAudio, match=r"played to its end \(loop is off\)"):
        sensor.read()


def test_the_replay_position_survives_a_state_round_trip(tmp_path: Path) -> None:
    path, _ = ramp_file(tmp_path, 7000)
    first = AudioFileSensor(str(path), step_seconds=0.1)
    first.setup()
    for _ in range(6):  # past the seam once
        first.read()
    state = first.state_dict()
    assert state == {"file": "ramp.wav", "position": 2600, "passes": 1}
    second = AudioFileSensor(str(path), step_seconds=0.1)
    second.load_state_dict(state)
    second.setup()
    for _ in range(8):
        assert torch.equal(first.read(), second.read())
        assert np.array_equal(first.window(), second.window())


def test_a_stereo_file_at_another_rate_is_resampled_and_mixed(tmp_path: Path) -> None:
    t = np.arange(8000) / 8000.0  # one second at 8 kHz
    left = (8000 * np.sin(2 * np.pi * 1000.0 * t)).astype(np.int16)
    right = (8000 * np.sin(2 * np.pi * 300.0 * t)).astype(np.int16)
    path = write_wav(tmp_path / "st.wav", np.stack([left, right], axis=1), 8000, channels=2)
    mono = AudioFileSensor(str(path), step_seconds=0.1, channels=1)
    stereo = AudioFileSensor(str(path), step_seconds=0.1, channels=2)
    mono.setup()
    stereo.setup()
    for _ in range(6):
        heard, apart = mono.read(), stereo.read()
    bands = mono.spectrogram
    loudest = heard[0].mean(dim=1).topk(2).indices.sort().values.tolist()
    assert loudest == sorted([bands.band_of(300.0), bands.band_of(1000.0)])
    assert int(apart[0].mean(dim=1).argmax()) == bands.band_of(1000.0)
    assert int(apart[1].mean(dim=1).argmax()) == bands.band_of(300.0)


def test_without_pyav_a_wav_that_is_not_16_bit_pcm_is_refused_naming_the_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With PyAV such files play (tests/interaction/test_video_audio.py); without, a hint."""
    monkeypatch.setitem(sys.modules, "av", None)  # import now fails as if absent
    path = write_wav(tmp_path / "eight.wav", np.zeros(100, dtype=np.uint8), width=1)
    sensor = AudioFileSensor(str(path))
    refused = r"eight.wav.*8-bit, 1 channel\(s\); expected 16-bit PCM.*"
    with pytest.raises(ValueError, match=refused + r'pip install -e "\.\[audio\]"'):
        sensor.setup()
    (tmp_path / "junk.wav").write_bytes(b"not a wav at all")
    with pytest.raises(ImportError, match=r"junk.wav'.*only 16-bit PCM WAV files are read without"):
        AudioFileSensor(str(tmp_path / "junk.wav")).setup()
    with pytest.raises(FileNotFoundError, match=r"interaction.audio.path=.*no such sound or video"):
        AudioFileSensor(str(tmp_path / "missing.wav"))


# -- the built-in world's sound ----------------------------------------------------------


def world_with_sound(seed: int = 0, movers: int = 0, **sound: Any) -> SimEnvironment:
    world = SimWorld(width=32, height=32, seed=seed, movers=movers)
    return SimEnvironment(world, audio=SimSound(seed=seed, **sound))


def hum_level(env: SimEnvironment, steps: int = 6) -> np.ndarray:
    """RMS per ear over a window of sound with the world held still (the movers too)."""
    assert env.audio is not None
    for _ in range(steps):  # sound.step without world.step: nothing moves or walks
        env.audio.step(env.world)
    window = env.audio.window()
    return np.sqrt((window.astype(np.float64) ** 2).mean(axis=1))


def test_a_mover_sounds_louder_when_the_agent_is_near() -> None:
    env = world_with_sound(movers=1)
    mover = env.world.movers.positions[0]
    assert env.audio is not None
    far_cell = max(
        env.world.grid.free_cells,
        key=lambda c: math.hypot(c[0] + 0.5 - mover[0], c[1] + 0.5 - mover[1]),
    )
    env.world.place(float(far_cell[0]) + 0.5, float(far_cell[1]) + 0.5, 0.0)
    far = np.hypot(*hum_level(env))  # both ears' power: the same wherever it is panned
    far_image = env.audio.observe()
    env.world.place(float(mover[0]) - 0.6, float(mover[1]), 0.0)  # 0.6 cells west of it
    near = np.hypot(*hum_level(env))
    near_image = env.audio.observe()
    distance = math.hypot(far_cell[0] + 0.5 - mover[0], far_cell[1] + 0.5 - mover[1])
    assert near / far == pytest.approx(distance / 0.6, rel=0.02)  # 1 / distance
    band = env.audio.spectrogram.band_of(196.0)  # the first mover's note
    assert near_image[:, band].mean() > far_image[:, band].mean() + 0.2


def test_a_mover_on_the_right_is_louder_in_the_right_ear() -> None:
    env = world_with_sound(movers=1)
    x, y = env.world.movers.positions[0]
    # Facing east (heading 0), south (+y) is to the right: stand north of the mover.
    env.world.place(float(x), float(y) - 0.6, 0.0)
    left, right = hum_level(env)
    assert right > 10 * left
    env.world.place(float(x), float(y) - 0.6, 180.0)  # facing west: it is on the left
    left, right = hum_level(env)
    assert left > 10 * right


def test_footsteps_sound_only_while_the_agent_walks() -> None:
    env = world_with_sound()  # no movers: only the agent makes sound
    env.world.place(*MIDDLE_OF_A, 0.0)
    assert env.audio is not None
    for action in [NOOP, TURN, NOOP, TURN, torch.tensor([0, 0, 0, 0, 1])]:  # run alone
        env.affect(action)
        assert not env.audio.last_block.any()
    assert env.observe()[AUDIO].max() == 0.0 and env.audio.footsteps == 0
    heard = []
    for _ in range(11):  # 1.32 cells: three strides of 0.4
        env.affect(FORWARD)
        heard.append(bool(env.audio.last_block.any()))
    assert env.audio.footsteps == 3 and any(heard)
    assert env.observe()[AUDIO].max() > 0.3
    walked = env.audio.footsteps
    for _ in range(10):  # running: 2.4 cells more, six strides
        env.affect(torch.tensor([2, 0, 0, 0, 1]))
    assert env.audio.footsteps - walked == 6
    assert env.audio.bumps == 0


def test_walking_into_a_wall_knocks_once_per_contact() -> None:
    env = world_with_sound()
    env.world.place(1.5, 3.5, 180.0)  # room a's west wall is one cell away, ahead
    assert env.audio is not None
    peaks = []
    for _ in range(12):
        env.affect(FORWARD)
        peaks.append(float(np.abs(env.audio.last_block).max()))
    assert env.audio.bumps == 1  # pressing on stays silent after the knock
    assert env.world.bumped and not env.audio.last_block.any()
    first = env.audio.footsteps
    knock = peaks.index(max(peaks))
    assert max(peaks) > 1.5 * max(p for i, p in enumerate(peaks) if i != knock)
    for _ in range(4):
        env.affect(BACKWARD)
    for _ in range(8):
        env.affect(FORWARD)
    assert env.audio.bumps == 2 and env.audio.footsteps > first


def test_the_sound_is_the_same_for_the_same_seed_and_actions() -> None:
    first, second, other = (world_with_sound(seed=s, movers=3) for s in (5, 5, 6))
    actions = random_actions(80)
    for action in actions:
        assert torch.equal(first.observe()[AUDIO], second.observe()[AUDIO])
        first.affect(action)
        second.affect(action)
    assert first.audio is not None and second.audio is not None
    assert first.audio.footsteps > 0
    assert np.array_equal(first.audio.window(), second.audio.window())
    for action in actions:
        other.affect(action)
    assert not torch.equal(first.observe()[AUDIO], other.observe()[AUDIO])


def test_without_audio_the_world_is_exactly_the_world_it_was() -> None:
    bare = SimWorld(width=32, height=32, seed=3)
    off = SimEnvironment(SimWorld(width=32, height=32, seed=3))
    on = SimEnvironment(SimWorld(width=32, height=32, seed=3), audio=SimSound(seed=3))
    assert off.observation_space() == image_space(32, 32)
    assert set(on.observation_space()) == {"image", AUDIO}
    for action in random_actions(60):
        seen_off, seen_on = off.observe(), on.observe()
        assert set(seen_off) == {"image"}
        assert torch.equal(seen_off["image"], rgb_to_observation(bare.render()))
        assert torch.equal(seen_on["image"], seen_off["image"])  # sound changes no frame
        check_observation(seen_on, on.observation_space(), "SimEnvironment")
        for env in (off, on):
            env.affect(action)
        bare.step(inputs_from_action(action))
    assert set(off.state_dict()) == set(bare.state_dict())
    assert set(on.state_dict()) == set(bare.state_dict()) | {"sound"}
    assert off.pose == on.pose == bare.pose


def test_the_world_sound_survives_a_state_round_trip() -> None:
    actions = random_actions(50)
    first = world_with_sound(seed=2, movers=4)
    for action in actions[:30]:
        first.affect(action)
    state = first.state_dict()
    second = world_with_sound(seed=2, movers=4)
    second.load_state_dict(state)
    for action in actions[30:]:
        assert torch.equal(first.observe()[AUDIO], second.observe()[AUDIO])
        first.affect(action)
        second.affect(action)
    assert first.audio is not None and second.audio is not None
    assert np.array_equal(first.audio.window(), second.audio.window())


def test_a_saved_sound_of_another_shape_is_refused_naming_what_changed() -> None:
    state = world_with_sound(movers=2).state_dict()
    other = world_with_sound(movers=2, window_seconds=0.25)
    with pytest.raises(ValueError, match=r"window of shape .*interaction.audio"):
        other.load_state_dict(state)


def compose_launch(*overrides: str) -> Any:
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("launch", overrides=list(overrides))


def test_interaction_audio_enabled_adds_the_audio_modality_to_the_default_world() -> None:
    off = instantiate(compose_launch().interaction.environment)
    assert isinstance(off, SimEnvironment) and off.audio is None
    assert set(off.observation_space()) == {"image"}
    cfg = compose_launch(
        "interaction.audio.enabled=true",
        "interaction.audio.n_mels=32",
        "interaction.audio.channels=1",
        "threads.inference.interval=0.05",
    )
    on = instantiate(cfg.interaction.environment)
    assert isinstance(on, SimEnvironment) and on.audio is not None
    assert on.observation_space()[AUDIO].shape == (1, 32, 47)
    assert on.audio.step_samples == 800  # the inference interval's worth of sound
    on.affect(FORWARD)
    check_observation(on.observe(), on.observation_space(), "SimEnvironment")
    with pytest.raises(ValueError, match=r"interaction.audio.enabled must be true or false"):
        sim_sound(enabled="yes")  # type: ignore[arg-type]


# -- the microphone ----------------------------------------------------------------------


class FakeStream:
    """Stands in for sounddevice.InputStream: PortAudio's thread is the test's to drive."""

    def __init__(self, backend: FakeSounddevice, **settings: Any) -> None:
        self.settings = settings
        self.backend = backend
        self.started = self.closed = False
        backend.streams.append(self)

    def start(self) -> None:
        self.started = True
        if self.backend.first_block:  # a device delivers at once; a dead one never does
            frames = self.settings["blocksize"]
            block = np.zeros((frames, self.settings["channels"]), dtype=np.float32)
            self.settings["callback"](block, frames, None, 0)

    def stop(self) -> None:
        self.started = False

    def close(self) -> None:
        self.closed = True


class FakeSounddevice:
    """The part of sounddevice's API the sensor uses, over a fixed list of devices."""

    class PortAudioError(Exception):
        pass

    def __init__(self, devices: Sequence[tuple[str, int]], first_block: bool = True) -> None:
        self.devices = [
            {
                "index": i,
                "name": name,
                "hostapi": 0,
                "max_input_channels": inputs,
                "default_samplerate": 48e3,
            }
            for i, (name, inputs) in enumerate(devices)
        ]
        self.first_block = first_block
        self.streams: list[FakeStream] = []

    def query_devices(self, device: int | str | None = None, kind: str | None = None) -> Any:
        if kind is None:
            return self.devices
        inputs = [d for d in self.devices if d["max_input_channels"] > 0]
        if device is None:
            if not inputs:
                raise self.PortAudioError("Error querying device -1")
            return inputs[0]
        for entry in inputs:
            if device == entry["index"] or (isinstance(device, str) and device in entry["name"]):
                return entry
        raise ValueError(f"No input device matching {device!r}")

    def query_hostapis(self, index: int) -> dict[str, Any]:
        return {"name": "ALSA"}

    def check_input_settings(self, **settings: Any) -> None:
        if settings["samplerate"] > 96000:
            raise self.PortAudioError("Invalid sample rate")

    def InputStream(self, **settings: Any) -> FakeStream:  # sounddevice's spelling
        return FakeStream(self, **settings)


DEVICES = [("Built-in Microphone", 1), ("HDMI Output", 0), ("Monitor of Speakers", 2)]


@pytest.fixture
def fake_sounddevice(monkeypatch: pytest.MonkeyPatch) -> Callable[..., FakeSounddevice]:
    def install(devices: Sequence[tuple[str, int]] = DEVICES, **options: Any) -> FakeSounddevice:
        backend = FakeSounddevice(devices, **options)
        monkeypatch.setattr(audio_module, "load_sounddevice", lambda: backend)
        return backend

    return install


def ramp_blocks(count: int, frames: int) -> list[np.ndarray]:
    """Blocks ``(frames, 1)`` whose samples count 1, 2, 3...: order and gaps are visible."""
    values = np.arange(1, count * frames + 1, dtype=np.float32)
    return [values[i * frames : (i + 1) * frames, None] for i in range(count)]


def test_the_microphone_inbox_is_taken_whole_while_the_device_keeps_writing(
    fake_sounddevice: Callable[..., FakeSounddevice],
) -> None:
    fake_sounddevice()
    sensor = MicrophoneSensor(device="Monitor", block_seconds=0.004)
    sensor.setup()  # the fake's first block: 64 zeros
    sensor.read()
    window = sensor.spectrogram.window_samples
    blocks = ramp_blocks(20000, 64)  # 1.28 M samples, 80 s of sound
    done, read_since = threading.Event(), threading.Event()
    failures: list[BaseException] = []

    def device() -> None:  # PortAudio's thread, flat out, in bursts of 100 blocks
        try:
            for start in range(0, len(blocks), 100):
                read_since.clear()
                for block in blocks[start : start + 100]:
                    sensor.audio_callback(block, len(block), None, 0)
                # The reader read during this burst (or now): the two really interleave.
                assert read_since.wait(DEADLINE), "the reader stopped reading"
        except BaseException as error:
            failures.append(error)
        finally:
            done.set()

    producer = threading.Thread(target=device, name="portaudio")
    producer.start()
    reads, deadline = 0, time.monotonic() + DEADLINE
    while not done.is_set():
        assert time.monotonic() < deadline, "the reader or the device is stuck"
        sensor.read()
        reads += 1
        read_since.set()
        samples = sensor.window()[0]
        heard = samples[samples > 0]
        # Whatever the interleaving, a window is one unbroken, ordered run of samples.
        assert np.array_equal(np.diff(heard), np.ones(len(heard) - 1, dtype=np.float32))
    producer.join(DEADLINE)
    assert not producer.is_alive() and not failures
    sensor.read()
    assert reads >= 200
    assert np.array_equal(sensor.window()[0], np.arange(1280000 - window + 1, 1280001))
    # Every sample was either taken by the reader or superseded in the inbox, never both.
    assert sensor.taken_samples + sensor.discarded_samples == 64 + 1280000
    sensor.teardown()


def test_a_long_gap_between_reads_keeps_only_the_latest_window(
    fake_sounddevice: Callable[..., FakeSounddevice],
) -> None:
    fake_sounddevice()
    sensor = MicrophoneSensor(device=2, block_seconds=0.01)
    sensor.setup()
    for block in ramp_blocks(5000, 160):  # 50 s unread (a pause)
        sensor.audio_callback(block, len(block), None, 0)
    blocks = sensor.take()
    held = sum(block.shape[1] for block in blocks)
    assert held < sensor.spectrogram.window_samples + 160  # bounded, not 50 s of sound
    assert blocks[-1][0, -1] == 800000 and sensor.discarded_samples == 800160 - held


def test_only_the_thread_that_set_the_microphone_up_may_take(
    fake_sounddevice: Callable[..., FakeSounddevice],
) -> None:
    fake_sounddevice()
    sensor = MicrophoneSensor(device="Built-in")
    sensor.setup()
    errors: list[BaseException] = []
    other = threading.Thread(target=lambda: _collect(errors, sensor.read), name="intruder")
    other.start()
    other.join(DEADLINE)
    assert len(errors) == 1 and "thread 'intruder' may not take" in str(errors[0])


def _collect(errors: list[BaseException], call: Callable[[], object]) -> None:
    try:
        call()
    except BaseException as error:
        errors.append(error)


def test_an_unknown_device_fails_in_setup_naming_the_key_and_the_inputs(
    fake_sounddevice: Callable[..., FakeSounddevice],
) -> None:
    fake_sounddevice()
    with pytest.raises(RuntimeError) as raised:
        MicrophoneSensor(device="VB-Cable").setup()
    message = str(raised.value)
    assert "interaction.audio.device='VB-Cable': No input device matching" in message
    assert "0: 'Built-in Microphone', ALSA (1 input channels" in message
    assert "2: 'Monitor of Speakers', ALSA (2 input channels" in message
    assert "HDMI Output" not in message  # not an input
    with pytest.raises(RuntimeError, match=r"'Built-in Microphone' has 1 input channel"):
        MicrophoneSensor(device=0, channels=2).setup()
    with pytest.raises(RuntimeError, match=r"refuses interaction.audio.sample_rate=192000"):
        MicrophoneSensor(device=2, sample_rate=192000).setup()


def test_a_machine_without_inputs_says_so(fake_sounddevice: Callable[..., FakeSounddevice]):
    fake_sounddevice([("HDMI Output", 0)])
    with pytest.raises(RuntimeError, match=r"device=None: no default input: .*\n.*none: Port"):
        MicrophoneSensor().setup()


def test_a_device_that_delivers_nothing_fails_setup_and_closes_it(
    fake_sounddevice: Callable[..., FakeSounddevice],
) -> None:
    backend = fake_sounddevice(first_block=False)
    sensor = MicrophoneSensor(device=2, start_timeout=0.2)
    with pytest.raises(RuntimeError, match=r"delivered no sound in 0.2 s \(start_timeout\)"):
        sensor.setup()
    assert backend.streams[0].closed


def test_a_stalled_microphone_fails_instead_of_repeating_old_sound(
    fake_sounddevice: Callable[..., FakeSounddevice],
) -> None:
    fake_sounddevice()
    now = [100.0]
    sensor = MicrophoneSensor(device=2, stall_timeout=2.0)
    sensor.clock = lambda: now[0]
    sensor.setup()
    sensor.read()
    now[0] += 1.5
    sensor.read()  # a quiet moment: the last window again
    now[0] += 1.0
    with pytest.raises(RuntimeError, match=r"no sound arrived for 2.5 s \(stall_timeout=2\)"):
        sensor.read()


def test_device_indices_and_names_are_told_apart_and_nonsense_refused() -> None:
    assert MicrophoneSensor(device="3").device == 3
    assert MicrophoneSensor(device="CABLE Output MME").device == "CABLE Output MME"
    assert MicrophoneSensor(device=None).device is None
    for bad, message in [(-1, "index must be >= 0"), ("  ", "is empty"), (1.5, "must be a")]:
        with pytest.raises(ValueError, match=rf"interaction.audio.device.*{message}"):
            MicrophoneSensor(device=bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"interaction.audio.device is required"):
        MicrophoneSensor(device=None, require_device=True).setup()


def test_a_missing_sounddevice_names_the_audio_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "sounddevice", None)  # import now fails as if absent
    with pytest.raises(ImportError, match=r'sounddevice package.*pip install -e "\.\[audio\]"'):
        MicrophoneSensor(device=0).setup()


def test_missing_portaudio_says_where_to_get_it(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_library(name: str) -> Any:
        raise OSError("PortAudio library not found")  # what sounddevice raises then

    monkeypatch.setattr(importlib, "import_module", no_library)
    with pytest.raises(RuntimeError, match=r"PortAudio library not found.*libportaudio2"):
        MicrophoneSensor().setup()


def test_the_real_sounddevice_refuses_an_unknown_device_naming_the_key() -> None:
    try:
        audio_module.load_sounddevice()
    except (ImportError, RuntimeError) as error:
        pytest.skip(f"no usable sounddevice here: {error}")
    with pytest.raises(RuntimeError, match=r"interaction.audio.device='no such device 42'"):
        MicrophoneSensor(device="no such device 42").setup()


NULL_DEVICE_ASOUNDRC = """
pcm.nullpcm {
    type null
    hint { show on description "Null capture for tests" }
}
"""
REAL_CAPTURE = """
import json, sys, threading
from ami.interaction.io import MicrophoneSensor
sensor = MicrophoneSensor(device="nullpcm", channels=2, block_seconds=0.01)
sensor.setup()
threads = {t.name for t in threading.enumerate()}
shapes = {tuple(sensor.read().shape) for _ in range(50)}
sensor.teardown()
sensor.take()
discarded = sensor.discarded_samples
late = sensor.take()  # anything that came after the teardown
print(json.dumps({"shapes": sorted(shapes), "samples": sensor.taken_samples,
                  "late": len(late) + sensor.discarded_samples - discarded,
                  "python_threads": len(threads)}))
"""


def test_a_real_portaudio_stream_feeds_the_microphone_from_its_own_thread(
    tmp_path: Path,
) -> None:
    """PortAudio's ALSA null device: a real callback thread, delivering as fast as it can."""
    try:
        audio_module.load_sounddevice()
    except (ImportError, RuntimeError) as error:
        pytest.skip(f"no usable sounddevice here: {error}")
    (tmp_path / ".asoundrc").write_text(NULL_DEVICE_ASOUNDRC)
    listing = subprocess.run(
        [sys.executable, "-m", "sounddevice"],
        env={**os.environ, "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=DEADLINE,
    )
    if "nullpcm" not in listing.stdout:
        pytest.skip(f"PortAudio here has no ALSA null device: {listing.stdout or listing.stderr}")
    run = subprocess.run(
        [sys.executable, "-c", REAL_CAPTURE],
        env={**os.environ, "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=DEADLINE,
    )
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["shapes"] == [[2, 64, 47]]
    assert result["samples"] > 0
    assert result["late"] == 0  # teardown stopped the callbacks
    assert result["python_threads"] == 1  # PortAudio's thread is not a Python thread


def test_vrchat_audio_pairs_the_camera_with_a_microphone() -> None:
    cfg = compose_launch(
        "interaction=vrchat_audio", "interaction.audio.device=Monitor", "interaction.camera=1"
    )
    env = instantiate(cfg.interaction.environment)
    assert isinstance(env, SensorActuatorEnvironment) and not env.time_scalable
    camera, microphone = env.sensors
    assert isinstance(camera, CameraSensor) and camera.source == 1
    assert isinstance(microphone, MicrophoneSensor) and microphone.device == "Monitor"
    assert env.observation_space()[AUDIO].shape == (2, 64, 47)
    unset = instantiate(compose_launch("interaction=vrchat_audio").interaction.environment)
    with pytest.raises(ValueError, match=r"interaction.audio.device is required.*sounddevice"):
        unset.sensors[1].setup()  # before any device is opened or listed
