from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from ami.interaction.io.video_files import EndOfVideos, VideoFilesSensor
from ami.interaction.worlds import SensorActuatorEnvironment

COLOURS = [(0, 0, 255), (0, 255, 0), (255, 0, 0), (255, 255, 255)]  # BGR: red green blue white
RGB_NAMES = {(1, 0, 0): "red", (0, 1, 0): "green", (0, 0, 1): "blue", (1, 1, 1): "white"}


def colour_of(observation: torch.Tensor) -> str:
    rgb = tuple(int(v) for v in observation.mean(dim=(1, 2)).round())
    return RGB_NAMES[rgb]  # type: ignore[index]


@pytest.fixture
def folder(tmp_path: Path, video_of: Callable[..., Path]) -> Path:
    video_of("b.mkv", COLOURS[2:])
    video_of("a.avi", COLOURS[:2])
    (tmp_path / "notes.txt").write_text("not a video: skipped")
    return tmp_path


def test_a_folder_plays_in_name_order_and_loops(folder: Path) -> None:
    env = SensorActuatorEnvironment(VideoFilesSensor(str(folder), width=16, height=16))
    env.setup()
    seen = [colour_of(env.observe()["image"]) for _ in range(6)]
    assert seen == ["red", "green", "blue", "white", "red", "green"]
    assert env.sensor.passes == 1  # type: ignore[attr-defined]
    env.teardown()


def test_without_loop_the_end_raises_end_of_videos(folder: Path) -> None:
    sensor = VideoFilesSensor(str(folder), loop=False)
    sensor.setup()
    for _ in range(4):
        sensor.read()
    with pytest.raises(EndOfVideos, match="all 2 video"):
        sensor.read()
    sensor.teardown()


def test_a_single_file_is_a_source(video_of: Callable[..., Path]) -> None:
    path = video_of("one.mkv", COLOURS[1:2])
    sensor = VideoFilesSensor(str(path), width=8, height=8)
    sensor.setup()
    assert [colour_of(sensor.read()) for _ in range(3)] == ["green"] * 3
    assert sensor.passes == 2
    sensor.teardown()


def test_actions_are_checked_and_ignored(video_of: Callable[..., Path]) -> None:
    env = SensorActuatorEnvironment(VideoFilesSensor(str(video_of("v.mkv", COLOURS[:1]))))
    env.setup()
    env.affect(torch.tensor([1, 2, 0, 1, 0]))
    env.on_pause()
    env.on_resume()
    with pytest.raises(ValueError, match="jump"):
        env.affect(torch.tensor([0, 0, 0, 2, 0]))
    assert env.metrics() == {}
    env.teardown()


def test_an_empty_folder_or_missing_path_fails_when_the_sensor_is_built(tmp_path: Path) -> None:
    """At launch, before any thread starts; not when the run is already under way."""
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="holds no video"):
        VideoFilesSensor(str(tmp_path / "empty"))
    with pytest.raises(FileNotFoundError, match="no such video file or folder"):
        VideoFilesSensor(str(tmp_path / "missing"))


def test_a_video_removed_after_launch_still_fails_clearly_at_setup(tmp_path: Path) -> None:
    (tmp_path / "clip.avi").write_bytes(b"")
    sensor = VideoFilesSensor(str(tmp_path / "clip.avi"))
    (tmp_path / "clip.avi").unlink()
    with pytest.raises(FileNotFoundError, match="no such video file or folder"):
        sensor.setup()


def test_a_broken_video_in_the_folder_fails_at_setup(folder: Path) -> None:
    (folder / "c.mp4").write_text("broken")
    with pytest.raises(RuntimeError, match=r"c.mp4"):
        VideoFilesSensor(str(folder)).setup()


def test_a_device_index_is_not_a_video_source() -> None:
    with pytest.raises(ValueError, match=r"interaction.camera"):
        VideoFilesSensor(0)  # type: ignore[arg-type]


def test_a_video_resumes_at_the_frame_it_had_reached(
    tmp_path: Path, video_of: Callable[..., Path]
) -> None:
    video_of("a.avi", [(0, 0, 255), (0, 255, 0), (255, 0, 0), (255, 255, 255)])
    original = VideoFilesSensor(str(tmp_path), width=8, height=8)
    original.setup()
    for _ in range(2):
        original.read()
    state = original.state_dict()
    resumed = VideoFilesSensor(str(tmp_path), width=8, height=8)
    resumed.load_state_dict(state)
    resumed.setup()
    assert torch.equal(resumed.read(), original.read()), "the third frame, not the first"
    original.teardown()
    resumed.teardown()


def test_now_playing_names_the_file_and_the_moment_of_the_frame_just_shown(folder: Path) -> None:
    """What a video's sound follows (ami/interaction/io/video_sound.py): 10 fps here."""
    sensor = VideoFilesSensor(str(folder), width=8, height=8)
    with pytest.raises(RuntimeError, match=r"no frame read yet"):
        sensor.now_playing()
    sensor.setup()
    assert sensor.current_video == folder / "a.avi"
    shown = []
    for _ in range(5):
        sensor.read()
        shown.append(sensor.now_playing())
    a, b = folder / "a.avi", folder / "b.mkv"
    assert shown == [(a, 0.0), (a, pytest.approx(0.1)), (b, 0.0), (b, pytest.approx(0.1)), (a, 0.0)]
    sensor.teardown()
    assert sensor.current_video is None
