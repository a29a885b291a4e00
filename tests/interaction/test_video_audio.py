"""Sound from media files: any file's audio track replayed, and a video heard with its frames."""

from __future__ import annotations

import subprocess
import sys
import wave
from collections.abc import Callable, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.errors import InstantiationException
from hydra.utils import instantiate

import ami.experiment  # noqa: F401  (registers what Hydra needs, as scripts/launch.py does)
from ami.interaction.io import AUDIO, AudioFileSensor, VideoFilesSensor
from ami.interaction.io.video_sound import VideoSoundSensor, video_sensors
from ami.interaction.spaces import check_observation
from ami.interaction.worlds import SensorActuatorEnvironment
from ami.models.nets.factories import spectrogram_shape
from ami.reports.event_reading import read_events

av = pytest.importorskip("av")

ROOT = Path(__file__).resolve().parents[2]
CONF = ROOT / "conf"
RATE = 16000
FPS = 10
STEP = RATE // FPS
"""Samples per frame of a 10 fps video, and per 0.1 s step of a replay."""


def write_media(
    path: Path,
    *,
    frames: Sequence[np.ndarray] | None = None,
    sound: np.ndarray | None = None,
    video_codec: str = "ffv1",
    audio_codec: str = "flac",
    first_frame: int = 0,
    times: Sequence[int] | None = None,
) -> Path:
    """A real media file written by PyAV: RGB ``frames`` at 10 fps and int16 ``sound``.

    Args:
        frames: ``uint8 (H, W, 3)`` pictures, or None for a file without video.
        sound: ``int16 (channels, n)`` at 16 kHz, or None for a file without sound.
        first_frame: The first frame's timestamp in frames: the picture starts this many
            tenths of a second after the sound.
        times: Each frame's timestamp in tenths of a second (a variable frame rate);
            by default one frame each tenth.
    """
    assert video_codec in av.codecs_available and audio_codec in av.codecs_available
    with av.open(str(path), "w") as out:
        video = audio = None
        if frames is not None:
            video = out.add_stream(video_codec, rate=FPS)
            video.height, video.width = frames[0].shape[:2]
            video.pix_fmt = "yuv444p" if video_codec == "ffv1" else "yuv420p"
        if sound is not None:
            layout = "mono" if sound.shape[0] == 1 else "stereo"
            audio = out.add_stream(audio_codec, rate=RATE, layout=layout)
        if video is not None:
            pts = times if times is not None else range(len(frames or []))
            for index, image in zip(pts, frames or [], strict=True):
                frame = av.VideoFrame.from_ndarray(image, format="rgb24")
                frame.pts, frame.time_base = first_frame + index, Fraction(1, FPS)
                out.mux(video.encode(frame))
            out.mux(video.encode(None))
        if audio is not None and sound is not None:
            for start in range(0, sound.shape[1], 1000):
                block = np.ascontiguousarray(sound[:, start : start + 1000].T.reshape(1, -1))
                frame = av.AudioFrame.from_ndarray(block, format="s16", layout=layout)
                frame.sample_rate, frame.pts, frame.time_base = RATE, start, Fraction(1, RATE)
                out.mux(audio.encode(frame))
            out.mux(audio.encode(None))
    return path


def write_wav(path: Path, sound: np.ndarray) -> Path:
    """The same int16 ``(channels, n)`` sound as a 16-bit PCM WAV."""
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(sound.shape[0])
        wav.setsampwidth(2)
        wav.setframerate(RATE)
        wav.writeframes(np.ascontiguousarray(sound.T).tobytes())
    return path


def greys(count: int, size: int = 32) -> list[np.ndarray]:
    """Frame ``k`` is grey level ``20 k``: a frame says which one it is."""
    return [np.full((size, size, 3), 20 * k, dtype=np.uint8) for k in range(count)]


def frame_number(image: torch.Tensor) -> int:
    return round(float(image.mean()) * 255 / 20)


def ramp(count: int, offset: int = 0) -> np.ndarray:
    """Mono int16 whose sample ``i`` is ``offset + i + 1``: a window says where it was cut."""
    return (np.arange(count, dtype=np.int64) + offset + 1).astype(np.int16)[None]


def window_of(sound: np.ndarray, end: int, size: int, loop: bool = False) -> np.ndarray:
    """The ``size`` samples before ``end`` as floats, silence outside the sound."""
    values = sound[0].astype(np.float32) / 32768.0
    index = np.arange(end - size, end)
    if loop:
        return np.where(index >= 0, values[index % len(values)], 0.0)
    inside = (index >= 0) & (index < len(values))
    return np.where(inside, values[np.clip(index, 0, len(values) - 1)], 0.0)


def stepped_tones(channels: int = 2) -> tuple[np.ndarray, list[float]]:
    """One second: ten tenths, each its own pitch (phase continuous), amplitude 0.5."""
    pitches = [300.0 + 250.0 * j for j in range(10)]
    phase = np.cumsum(np.repeat([2 * np.pi * f / RATE for f in pitches], STEP))
    tone = (0.5 * 32767 * np.sin(phase)).astype(np.int16)
    return np.repeat(tone[None], channels, axis=0), pitches


def compose_launch(*overrides: str) -> Any:
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("launch", overrides=list(overrides))


def video_world(video: Path, *overrides: str) -> SensorActuatorEnvironment:
    cfg = compose_launch(
        "interaction=video",
        f"interaction.camera={video}",
        "interaction.audio.enabled=true",
        *overrides,
    )
    env = instantiate(cfg.interaction.environment)
    assert isinstance(env, SensorActuatorEnvironment)
    return env


# -- any file's audio track, replayed step by step ---------------------------------------


def test_a_sine_in_an_aac_video_is_heard_in_the_mel_band_of_its_frequency(
    tmp_path: Path,
) -> None:
    t = np.arange(RATE) / RATE
    sine = (0.5 * 32767 * np.sin(2 * np.pi * 440.0 * t)).astype(np.int16)
    video = write_media(
        tmp_path / "sine.mp4",
        frames=greys(10),
        sound=np.stack([sine, sine]),
        video_codec="libx264",
        audio_codec="aac",
    )
    sensor = AudioFileSensor(str(video), step_seconds=0.1, channels=2)
    sensor.setup()
    for _ in range(6):  # the window (0.5 s) now lies inside the tone
        heard = sensor.read()
    sensor.space().check(AUDIO, heard)
    band = sensor.spectrogram.band_of(440.0)
    ideal = sensor.spectrogram(torch.from_numpy(np.stack([sine, sine])[:, -8000:] / 32768.0))
    for ear in (0, 1):
        assert int(heard[ear].mean(dim=1).argmax()) == band
        # as loud as the sine itself (0.5: 6 dB below full scale), AAC's error aside
        assert float(heard[ear, band].mean()) == pytest.approx(
            float(ideal[ear, band].mean()), abs=0.01
        )
        assert float(heard[ear, band].mean()) - float(heard[ear, band + 3].mean()) > 0.2


def test_the_kth_read_of_a_video_ends_k_plus_1_steps_into_its_sound_as_a_wav_would(
    tmp_path: Path,
) -> None:
    """Lossless (FLAC): the same samples as the WAV, so the very same spectrograms."""
    sound = ramp(RATE)
    video = write_media(tmp_path / "ramp.mkv", frames=greys(10), sound=sound)
    wav = write_wav(tmp_path / "ramp.wav", sound)
    from_video = AudioFileSensor(str(video), step_seconds=0.1)
    from_wav = AudioFileSensor(str(wav), step_seconds=0.1)
    from_video.setup()
    from_wav.setup()
    size = from_video.spectrogram.window_samples
    for k in range(13):  # past the end: both loop at the same seam
        heard, expected = from_video.read(), from_wav.read()
        end = (k + 1) * STEP
        assert np.array_equal(from_video.window()[0], window_of(sound, end, size, loop=True))
        assert torch.equal(heard, expected), k
        assert from_video.broke_continuity() == from_wav.broke_continuity() == (k == 10)


def test_an_aac_sound_track_gives_the_spectrograms_of_its_wav_within_the_codec_s_error(
    tmp_path: Path,
) -> None:
    sound, pitches = stepped_tones()
    video = write_media(
        tmp_path / "tones.mp4",
        frames=greys(10),
        sound=sound,
        video_codec="libx264",
        audio_codec="aac",
    )
    from_video = AudioFileSensor(str(video), step_seconds=0.1, channels=2)
    from_wav = AudioFileSensor(str(write_wav(tmp_path / "tones.wav", sound)), channels=2)
    from_video.setup()
    from_wav.setup()
    for k in range(12):  # the padding of AAC's last frame is cut: the seams agree
        heard, expected = from_video.read(), from_wav.read()
        loud = expected > 0.5  # the tones; AAC's noise fills the quiet bands a little
        assert (heard - expected)[loud].abs().max() < 0.02, k
        assert (heard - expected).abs().mean() < 0.01, k
        newest = from_video.spectrogram.band_of(pitches[k % 10])  # the last tenth's pitch
        assert int(heard[0, :, -1].argmax()) == int(expected[0, :, -1].argmax()) == newest


def test_a_file_without_an_audio_track_is_refused_naming_its_path(tmp_path: Path) -> None:
    silent = write_media(tmp_path / "silent.mkv", frames=greys(3))
    sensor = AudioFileSensor(str(silent))
    with pytest.raises(ValueError, match=r"interaction.audio.path='.*silent.mkv'.*no audio track"):
        sensor.setup()
    (tmp_path / "junk.mp4").write_bytes(b"not a video at all")
    with pytest.raises(ValueError, match=r"junk.mp4'.*FFmpeg cannot"):
        AudioFileSensor(str(tmp_path / "junk.mp4")).setup()


def test_a_wav_that_wave_cannot_read_is_decoded_by_pyav(tmp_path: Path) -> None:
    eight_bit = tmp_path / "eight.wav"
    with wave.open(str(eight_bit), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(1)  # unsigned 8-bit: 128 is silence
        wav.setframerate(RATE)
        wav.writeframes((128 + 100 * np.sign(np.sin(np.arange(RATE) / 5))).astype(np.uint8))
    sensor = AudioFileSensor(str(eight_bit))
    sensor.setup()
    sensor.read()
    assert np.abs(sensor.window()[0, -STEP:]).max() == pytest.approx(100 / 128, abs=0.01)


def test_without_pyav_a_wav_still_plays_and_anything_else_names_the_audio_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sound = ramp(4000)
    video = write_media(tmp_path / "clip.mkv", frames=greys(3), sound=sound)
    wav = write_wav(tmp_path / "clip.wav", sound)
    monkeypatch.setitem(sys.modules, "av", None)  # import now fails as if absent
    plays = AudioFileSensor(str(wav))
    plays.setup()
    plays.read()
    assert np.array_equal(plays.window()[0], window_of(sound, 1600, 8000))
    extra = r'pip install -e "\.\[audio\]"'
    with pytest.raises(ImportError, match=rf"interaction.audio.path='.*clip.mkv'.*PyAV.*{extra}"):
        AudioFileSensor(str(video)).setup()
    with pytest.raises(ImportError, match=rf"interaction.camera='.*clip.mkv'.*PyAV.*{extra}"):
        video_sensors(str(video), audio={"enabled": True})


# -- a video heard in step with its frames (interaction=video) ---------------------------


def test_the_video_world_hears_each_frame_at_its_own_moment(tmp_path: Path) -> None:
    """Frame k shows 0.1 k s into the file; the sound observed with it ends there."""
    sound = ramp(RATE)
    video = write_media(tmp_path / "clip.mkv", frames=greys(10), sound=sound)
    env = video_world(video, "interaction.audio.channels=1", "interaction.width=16")
    frames, hearing = env.sensors
    assert isinstance(frames, VideoFilesSensor) and isinstance(hearing, VideoSoundSensor)
    assert env.time_scalable and env.observation_space()[AUDIO].shape == (1, 64, 47)
    env.setup()
    size = hearing.spectrogram.window_samples
    for step in range(13):
        observation = env.observe()
        check_observation(observation, env.observation_space(), "video world")
        shown = step % 10  # the single file loops after its tenth frame
        assert frame_number(observation["image"]) == shown
        assert frames.now_playing() == (video, pytest.approx(shown / FPS))
        assert hearing.end_sample == shown * STEP
        assert np.array_equal(hearing.window()[0], window_of(sound, shown * STEP, size)), step
        assert torch.equal(
            observation[AUDIO], hearing.spectrogram(torch.from_numpy(hearing.window()))
        )
        assert env.broke_continuity() == (step == 10)  # the loop is a cut, for both
    env.teardown()


def test_a_picture_that_starts_after_its_sound_is_heard_at_its_own_moment(
    tmp_path: Path,
) -> None:
    """The video stream starts 0.5 s into the file: its first frame hears 0.5 s of sound."""
    sound = ramp(2 * RATE)
    video = write_media(tmp_path / "late.mkv", frames=greys(5), sound=sound, first_frame=5)
    frames = VideoFilesSensor(str(video), width=16, height=16)
    hearing = VideoSoundSensor(frames, channels=1)
    frames.setup()
    hearing.setup()
    for k in range(5):
        assert frame_number(frames.read()) == k
        hearing.read()
        assert hearing.end_sample == (5 + k) * STEP
        assert np.array_equal(hearing.window()[0], window_of(sound, (5 + k) * STEP, 8000))


def test_with_a_variable_frame_rate_each_frame_hears_its_own_moment(tmp_path: Path) -> None:
    """Frames at 0, 0.1, 0.3, 0.4 and 0.7 s: counting frames at 10 fps would drift."""
    sound = ramp(RATE)
    times = [0, 1, 3, 4, 7]
    video = write_media(tmp_path / "vfr.mkv", frames=greys(5), sound=sound, times=times)
    frames = VideoFilesSensor(str(video), width=16, height=16)
    hearing = VideoSoundSensor(frames, channels=1)
    frames.setup()
    hearing.setup()
    for k, tenths in enumerate(times):
        assert frame_number(frames.read()) == k
        hearing.read()
        assert hearing.end_sample == tenths * STEP
        assert np.array_equal(hearing.window()[0], window_of(sound, tenths * STEP, 8000))


def test_each_video_of_a_folder_is_heard_with_its_own_sound(tmp_path: Path) -> None:
    first, second = ramp(3 * STEP), ramp(3 * STEP, offset=20000)
    write_media(tmp_path / "a.mkv", frames=greys(3), sound=first)
    write_media(tmp_path / "b.mkv", frames=greys(3), sound=second)
    env = SensorActuatorEnvironment(
        video_sensors(str(tmp_path), 16, 16, audio={"enabled": True, "channels": 1})
    )
    hearing = env.sensors[1]
    assert isinstance(hearing, VideoSoundSensor)
    env.setup()
    heard = []
    for _ in range(6):
        env.observe()
        heard.append((hearing.window()[0, -1], env.broke_continuity()))
    # The newest sample of each window: a's, then b's (a cut), each from its own start.
    assert heard[3] == (0.0, True)  # b's first frame: nothing of b heard yet
    assert heard[4][0] == pytest.approx(window_of(second, STEP, 1)[0])
    assert heard[1][0] == pytest.approx(window_of(first, STEP, 1)[0])
    assert np.array_equal(hearing.window()[0], window_of(second, 2 * STEP, 8000))
    env.teardown()


def test_the_video_world_resumes_with_picture_and_sound_in_step(tmp_path: Path) -> None:
    sound = ramp(RATE)
    video = write_media(tmp_path / "clip.mkv", frames=greys(10), sound=sound)
    original = video_world(video)
    original.setup()
    for _ in range(4):
        original.observe()
    state = original.state_dict()
    resumed = video_world(video)
    resumed.load_state_dict(state)
    resumed.setup()
    for _ in range(3):
        before, after = original.observe(), resumed.observe()
        assert torch.equal(before["image"], after["image"])
        assert torch.equal(before[AUDIO], after[AUDIO])
    assert resumed.sensors[1].end_sample == 6 * STEP  # type: ignore[attr-defined]
    original.teardown()
    resumed.teardown()


def test_sound_for_a_video_without_an_audio_track_is_refused_at_launch(tmp_path: Path) -> None:
    write_media(tmp_path / "a.mkv", frames=greys(2), sound=ramp(STEP))
    write_media(tmp_path / "b.mkv", frames=greys(2))
    with pytest.raises(
        InstantiationException,
        match=r"interaction.audio.enabled=true: interaction.camera='.*b.mkv'.*no audio track",
    ):
        video_world(tmp_path)
    without = instantiate(
        compose_launch(
            "interaction=video", f"interaction.camera={tmp_path}"
        ).interaction.environment
    )
    assert isinstance(without.sensor, VideoFilesSensor) and len(without.sensors) == 1


def test_the_video_world_without_sound_is_the_world_it_was_and_sizes_models_alike(
    video_of: Callable[..., Path],
) -> None:
    video = video_of("clip.mkv", [(0, 0, 255)] * 2)
    cfg = compose_launch("interaction=video", f"interaction.camera={video}")
    env = instantiate(cfg.interaction.environment)
    assert len(env.sensors) == 1 and set(env.observation_space()) == {"image"}
    # interaction.audio decides the spectrogram's shape exactly as the built-in world's.
    sim = compose_launch("interaction.audio.n_mels=32")
    other = compose_launch("interaction=video", "interaction.audio.n_mels=32")
    assert spectrogram_shape(None, other.interaction.audio) == (2, 32, 47)
    assert spectrogram_shape(None, other.interaction.audio) == spectrogram_shape(
        None, sim.interaction.audio
    )
    with pytest.raises(ValueError, match=r"interaction.audio.enabled must be true or false"):
        video_sensors(str(video), audio={"enabled": "yes"})
    with pytest.raises(ValueError, match=r"unknown setting\(s\) \['device'\]"):
        video_sensors(str(video), audio={"enabled": True, "device": 3})


@pytest.mark.slow
def test_a_launched_video_world_with_sound_learns_from_both_image_and_audio(
    tmp_path: Path,
) -> None:
    sound, _ = stepped_tones()
    video = write_media(tmp_path / "clip.mkv", frames=greys(10), sound=sound)
    run = tmp_path / "run"
    command = [
        sys.executable,
        str(ROOT / "scripts" / "launch.py"),
        "interaction=video",
        f"interaction.camera={video}",
        "interaction.audio.enabled=true",
        "model=audio_visual",
        "agent=random",
        "buffer=random",
        "buffer.keys=[image,audio,action]",
        "max_uptime=15",
        "web_api.port=0",
        f"hydra.run.dir={run}",
    ]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-3000:]
    scalars = read_events(run / "tensorboard").scalars
    for part in ("image", "audio"):
        series = scalars[f"training/representation/loss/{part}"]
        # In (0, 1]: the error between a reconstruction and an observation, both in [0, 1].
        assert len(series) >= 1 and ((series.values > 0) & (series.values <= 1)).all(), part
