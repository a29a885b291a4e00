"""Every option of every config group composes with the defaults and builds a system."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from ami.experiment import build
from ami.threads import InferenceThread, TrainingThread

CONF = Path(__file__).resolve().parents[1] / "conf"
GROUPS = [
    "interaction",
    "model",
    "agent",
    "buffer",
    "threads",
    "fabric",
    "web_api",
    "checkpoint",
    "debug",
]
OPTIONS = [
    (group, path.stem) for group in GROUPS for path in sorted((CONF / group).glob("*.yaml"))
] + [("experiment", path.stem) for path in sorted((CONF / "experiment").glob("*.yaml"))]

pytestmark = pytest.mark.usefixtures("keep_main_thread_name")


def compose_launch(*overrides: str) -> DictConfig:
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("launch", overrides=list(overrides))


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("video") / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (32, 32))
    for value in (0, 128, 255):
        writer.write(np.full((32, 32, 3), value, np.uint8))
    writer.release()
    return path


def test_every_group_has_options() -> None:
    found = {group for group, _ in OPTIONS}
    assert found == {*GROUPS, "experiment"}


@pytest.mark.parametrize(("group", "option"), OPTIONS, ids=[f"{g}={o}" for g, o in OPTIONS])
def test_option_builds(group: str, option: str, video: Path, tmp_path: Path) -> None:
    overrides = [f"{group}={option}", "fabric.accelerator=cpu"]
    cfg = compose_launch(*overrides)
    if cfg.interaction.get("camera", "absent") is None or "video" in option:
        cfg = compose_launch(*overrides, f"interaction.camera={video}")
    if option == "vae" and group == "model":
        cfg = compose_launch(*overrides, "agent=random")
    if option == "audio_visual" and group == "model":  # a world that hears, no dynamics
        cfg = compose_launch(
            *overrides,
            "agent=random",
            "interaction.audio.enabled=true",
            "buffer.keys=[image,audio,action]",
        )
    main = build(cfg, tmp_path)
    inference, training = main.threads
    assert isinstance(inference, InferenceThread)
    assert isinstance(training, TrainingThread)
    assert training.models.names and training.trainers and training.buffers
    assert (tmp_path / "config.yaml").is_file()
    main._waker.close()


def test_defaults_are_the_documented_ones() -> None:
    choices = compose_launch()
    assert choices.interaction.environment._target_ == "ami.interaction.worlds.SimEnvironment"
    assert choices.agent.agent._target_ == "ami.interaction.agents.CuriosityAgent"
    assert choices.buffer._target_ == "ami.data.RandomReplacementBuffer"
    assert choices.model.size == "small"
    assert choices.web_api.host == "127.0.0.1" and choices.web_api.port == "auto"


def test_the_web_api_token_never_reaches_the_run_folder(tmp_path: Path) -> None:
    secret = "s3cret-token-0123456789"
    cfg = compose_launch(f"web_api.token={secret}", "fabric.accelerator=cpu")
    main = build(cfg, tmp_path)
    main._waker.close()
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.name == "config.yaml" for p in written)
    for path in written:
        assert secret.encode() not in path.read_bytes(), path
    assert "<redacted>" in (tmp_path / "config.yaml").read_text()
