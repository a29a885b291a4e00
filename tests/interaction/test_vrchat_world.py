"""VRChat's wiring with real parts: a video file as the camera, a real OSC server as VRChat."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from ami.interaction.io.camera import CameraSensor
from ami.interaction.io.osc_actuator import OscActuator
from ami.interaction.worlds import SensorActuatorEnvironment
from tests.interaction.world_parts import OscRecorder


def test_a_camera_that_stops_fails_the_step_and_teardown_still_releases_inputs(
    osc_recorder: OscRecorder, video_of: Callable[..., Path]
) -> None:
    camera = CameraSensor(str(video_of("two.mkv", [(0, 0, 255)] * 2)), width=16, height=16)
    env = SensorActuatorEnvironment(camera, OscActuator("127.0.0.1", osc_recorder.port))
    env.setup()
    for _ in range(2):
        assert env.observe()["image"][0].mean() > 0.95  # red
        env.affect(torch.tensor([1, 0, 1, 0, 1]))
        osc_recorder.receive(5)
    env.on_pause()
    assert {args[0] for _, args in osc_recorder.receive(5)} == {0}
    env.on_resume()
    assert [args[0] for _, args in osc_recorder.receive(5)] == [1.0, 0.0, 1.0, 0, 1]
    with pytest.raises(RuntimeError, match="ended"):
        env.observe()
    env.teardown()
    released = dict((address, args[0]) for address, args in osc_recorder.receive(5))
    assert released == {
        "/input/Horizontal": 0.0,
        "/input/Jump": 0,
        "/input/LookHorizontal": 0.0,
        "/input/Run": 0,
        "/input/Vertical": 0.0,
    }
    with pytest.raises(RuntimeError, match="before setup"):
        camera.read()  # released too
