from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from ami.interaction.io.camera import CameraSensor
from tests.interaction.world_parts import write_video

RED, GREEN, BLUE = (0, 0, 255), (0, 255, 0), (255, 0, 0)  # BGR, as OpenCV writes


def banded(width: int, height: int) -> np.ndarray:
    """Green then blue in the centred square; red in the margins the crop must remove."""
    frame = np.zeros((height, width, 3), dtype=np.uint8)
    frame[:] = RED
    side = min(width, height)
    top, left = (height - side) // 2, (width - side) // 2
    square = frame[top : top + side, left : left + side]
    square[:, : side // 2] = GREEN
    square[:, side // 2 :] = BLUE
    return frame


@pytest.mark.parametrize(("width", "height"), [(160, 90), (90, 160)])
def test_frames_are_cropped_resized_and_rgb(tmp_path: Path, width: int, height: int) -> None:
    path = write_video(tmp_path / "bands.mkv", [banded(width, height)] * 2)
    sensor = CameraSensor(str(path), width=84, height=84)
    sensor.setup()
    observation = sensor.read()
    sensor.teardown()
    assert observation.shape == (3, 84, 84)
    assert observation.dtype == torch.float32
    assert observation.min() >= 0.0 and observation.max() <= 1.0
    red, green, blue = observation
    assert red.max() < 0.05  # the margins were cropped away, nothing was stretched
    assert green[:, :40].min() > 0.95 and blue[:, :40].max() < 0.05
    assert blue[:, 44:].min() > 0.95 and green[:, 44:].max() < 0.05


def test_non_square_observations_keep_the_aspect(tmp_path: Path) -> None:
    path = write_video(tmp_path / "bands.mkv", [banded(160, 90)])
    sensor = CameraSensor(str(path), width=64, height=32)
    sensor.setup()
    observation = sensor.read()
    sensor.teardown()
    assert observation.shape == (3, 32, 64)
    assert observation[0].max() > 0.95  # 2:1 keeps part of the red margins of a 16:9 frame


def test_end_of_stream_is_an_error_not_a_frozen_frame(tmp_path: Path) -> None:
    path = write_video(tmp_path / "three.mkv", [banded(64, 64)] * 3)
    sensor = CameraSensor(str(path))
    sensor.setup()
    for _ in range(3):
        sensor.read()
    with pytest.raises(RuntimeError, match=r"three.mkv.*ended"):
        sensor.read()
    sensor.teardown()


def test_a_missing_file_fails_at_setup_naming_it(tmp_path: Path) -> None:
    sensor = CameraSensor(str(tmp_path / "nowhere.mp4"))
    with pytest.raises(FileNotFoundError, match=r"nowhere.mp4"):
        sensor.setup()


def test_a_file_that_is_not_a_video_fails_at_setup(tmp_path: Path) -> None:
    path = tmp_path / "notes.mp4"
    path.write_text("not a video")
    with pytest.raises(RuntimeError, match=r"notes.mp4.*cannot open"):
        CameraSensor(str(path)).setup()


def test_a_missing_device_fails_at_setup_with_what_to_check() -> None:
    with pytest.raises(RuntimeError, match=r"camera=63.*OBS virtual camera"):
        CameraSensor(63).setup()


def test_a_digit_string_is_a_device_index() -> None:
    assert CameraSensor("2").source == 2


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"source": -1}, "device index"),
        ({"source": 1.5}, "interaction.camera"),
        ({"width": 4}, "interaction.width"),
        ({"retries": -1}, "retries"),
    ],
)
def test_bad_config_values_are_rejected(kwargs: dict[str, object], words: str) -> None:
    with pytest.raises(ValueError, match=words):
        CameraSensor(**kwargs)  # type: ignore[arg-type]


def test_read_before_setup_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="before setup"):
        CameraSensor(0).read()
