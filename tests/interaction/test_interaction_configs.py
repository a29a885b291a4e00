"""Every interaction option composes from the real config tree and instantiates."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig

import ami.experiment  # noqa: F401  (registers what Hydra needs, as scripts/launch.py does)
from ami.interaction.io import ACTION_CHOICES, CameraSensor, OscActuator, VideoFilesSensor
from ami.interaction.worlds import SensorActuatorEnvironment, SimEnvironment, SimOscEnvironment
from ami.interaction.wrappers import RecordingWrapper

CONF = Path(__file__).resolve().parents[2] / "conf"


def compose_launch(*overrides: str) -> DictConfig:
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("launch", overrides=list(overrides))


@pytest.fixture
def a_video(video_of: Callable[..., Path]) -> Path:
    return video_of("clip.mkv", [(10, 20, 30)] * 3)


def test_every_option_uses_the_one_action_space(a_video: Path) -> None:
    for option in ("sim", "sim_osc", "vrchat", "video"):
        camera = [f"interaction.camera={a_video}"] if option == "video" else []
        cfg = compose_launch(f"interaction={option}", *camera)
        assert tuple(cfg.interaction.action_choices) == ACTION_CHOICES, option


def test_sim_is_the_default_and_steps(tmp_path: Path) -> None:
    cfg = compose_launch("seed=3", "interaction.width=64", "interaction.height=48")
    env = instantiate(cfg.interaction.environment)
    assert isinstance(env, SimEnvironment) and not isinstance(env, SimOscEnvironment)
    assert env.observe()["image"].shape == (3, 48, 64)
    env.affect(torch.tensor([1, 0, 0, 0, 0]))
    assert cfg.interaction.wrappers == {}


def test_sim_osc_composes_and_runs_over_a_free_port() -> None:
    cfg = compose_launch("interaction=sim_osc")
    env = instantiate(cfg.interaction.environment)
    assert isinstance(env, SimOscEnvironment)
    env.setup()
    assert env.server.port != 0
    env.affect(torch.tensor([1, 0, 0, 0, 0]))
    assert env.observe()["image"].shape == (3, 84, 84)
    env.teardown()


def test_vrchat_short_overrides_reach_the_camera_and_the_actuator() -> None:
    cfg = compose_launch(
        "interaction=vrchat",
        "interaction.camera=2",
        "interaction.osc_host=localhost",
        "interaction.osc_port=9100",
        "interaction.width=96",
        "interaction.height=54",
    )
    env = instantiate(cfg.interaction.environment)  # opens nothing until setup()
    assert isinstance(env, SensorActuatorEnvironment)
    assert isinstance(env.sensor, CameraSensor) and isinstance(env.actuator, OscActuator)
    assert (env.sensor.source, env.sensor.width, env.sensor.height) == (2, 96, 54)
    assert (env.actuator.host, env.actuator.port) == ("localhost", 9100)


def test_vrchat_rejects_a_bad_port_naming_the_key() -> None:
    cfg = compose_launch("interaction=vrchat", "interaction.osc_port=99999")
    with pytest.raises(InstantiationException, match=r"interaction.osc_port"):
        instantiate(cfg.interaction.environment)


def test_video_needs_a_camera_path_and_plays_it(a_video: Path) -> None:
    cfg = compose_launch("interaction=video")
    with pytest.raises(InstantiationException, match=r"interaction.camera must be a video"):
        instantiate(cfg.interaction.environment)
    cfg = compose_launch("interaction=video", f"interaction.camera={a_video}")
    env = instantiate(cfg.interaction.environment)
    assert isinstance(env.sensor, VideoFilesSensor) and env.actuator is None
    env.setup()
    assert env.observe()["image"][2].mean() == pytest.approx(10 / 255, abs=0.01)  # BGR (10, 20, 30)
    env.teardown()


@pytest.mark.parametrize("option", ["sim", "vrchat"])
def test_recording_is_one_override_away(option: str, tmp_path: Path) -> None:
    cfg = compose_launch(
        f"interaction={option}",
        "+interaction/wrappers=record",
        f"interaction.wrappers.record.directory={tmp_path}",
    )
    wrap = instantiate(cfg.interaction.wrappers.record)
    env = wrap(environment=instantiate(cfg.interaction.environment))
    assert isinstance(env, RecordingWrapper)
    assert env.fps == pytest.approx(1.0 / cfg.threads.inference.interval)
    assert env.video_path.parent == tmp_path
