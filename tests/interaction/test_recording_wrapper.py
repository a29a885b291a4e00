from __future__ import annotations

import csv
from pathlib import Path

import cv2
import pytest
import torch

from ami.interaction.io.frames import frame_to_observation
from ami.interaction.worlds.sim import SimEnvironment, SimWorld
from ami.interaction.wrappers import RecordingWrapper
from tests.interaction.world_parts import random_actions


def test_observations_and_actions_are_recorded_in_step(tmp_path: Path) -> None:
    env = RecordingWrapper(SimEnvironment(SimWorld(width=40, height=24, seed=1)), tmp_path / "rec")
    env.setup()
    seen, done = [], random_actions(6)
    for action in done:
        seen.append(env.observe()["image"])
        env.affect(action)
    env.on_pause()
    env.on_resume()
    env.teardown()

    capture = cv2.VideoCapture(str(tmp_path / "rec" / "observations.mkv"))
    assert capture.get(cv2.CAP_PROP_FPS) == pytest.approx(10.0)  # 1 / the default interval
    frames = []
    while (frame := capture.read())[0]:
        frames.append(frame_to_observation(frame[1], 40, 24))
    capture.release()
    assert len(frames) == len(seen) == env.frames
    for recorded, observed in zip(frames, seen, strict=True):
        assert torch.equal(recorded, observed)  # FFV1: lossless

    with (tmp_path / "rec" / "actions.csv").open() as file:
        rows = list(csv.DictReader(file))
    assert [int(row["frame"]) for row in rows] == list(range(6))
    columns = ["move_vertical", "move_horizontal", "look_horizontal", "jump", "run"]
    assert [[int(row[c]) for c in columns] for row in rows] == [a.tolist() for a in done]
    assert all(float(row["seconds"]) >= 0 for row in rows)


def test_the_metrics_pass_through(tmp_path: Path) -> None:
    inner = SimEnvironment(SimWorld(width=16, height=16))
    env = RecordingWrapper(inner, tmp_path)
    assert env.metrics() == inner.metrics()


def test_an_unknown_codec_fails_naming_the_file(tmp_path: Path) -> None:
    env = RecordingWrapper(SimEnvironment(SimWorld(width=16, height=16)), tmp_path, codec="ZZZZ")
    env.setup()
    with pytest.raises(RuntimeError, match=r"observations.mkv.*ZZZZ"):
        env.observe()
    env.teardown()
    with pytest.raises(ValueError, match="codec"):
        RecordingWrapper(SimEnvironment(SimWorld(16, 16)), tmp_path, codec="FFV")
