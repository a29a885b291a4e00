"""agent=curiosity and model=vae: composed from conf/, built, and run for a few seconds."""

from __future__ import annotations

import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from ami.data import SequentialBuffer
from ami.experiment import build
from ami.interaction.agents import CuriosityAgent
from ami.threads import MainThread, TrainingThread
from ami.trainers import DynamicsTrainer, PPOTrainer, ReconstructionTrainer, VAETrainer

CONF = Path(__file__).resolve().parents[2] / "conf"

pytestmark = [pytest.mark.usefixtures("keep_main_thread_name"), pytest.mark.timeout(60)]


def launch_config(*overrides: str, api: bool = False) -> DictConfig:
    web_api = "web_api.port=0" if api else "web_api=none"
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("launch", overrides=[web_api, *overrides])


def run_until(main: MainThread, done: Callable[[], bool], deadline: float = 150.0) -> int:
    """Run ``main`` until ``done()`` holds, then shut it down through the control API.

    Driven by progress, not by seconds: a busy machine only makes it take longer.
    """

    def watch() -> None:
        limit = time.monotonic() + deadline
        while time.monotonic() < limit and not (main._started_at and done()):
            time.sleep(0.05)
        assert main.api is not None
        request = urllib.request.Request(
            main.api.url + "/api/shutdown",
            method="POST",
            data=b"",
            headers={"Content-Type": "application/json"},
        )
        urllib.request.urlopen(request, timeout=30).close()

    watcher = threading.Thread(target=watch, name="test-watcher", daemon=True)
    watcher.start()
    code = main.run()
    watcher.join(30)
    return code


def training_thread(cfg: DictConfig, tmp_path: Path) -> TrainingThread:
    main = build(cfg, tmp_path)
    (thread,) = [t for t in main.threads if isinstance(t, TrainingThread)]
    return thread


def scalar_tags(log_dir: Path) -> set[str]:
    events = EventAccumulator(str(log_dir), size_guidance={"scalars": 0})
    events.Reload()
    return set(events.Tags()["scalars"])


def test_curiosity_config_builds_agent_trajectory_buffer_and_ppo(tmp_path: Path) -> None:
    cfg = launch_config("agent=curiosity", "model=world_model")
    training = training_thread(cfg, tmp_path)
    assert isinstance(training.buffers["trajectory"], SequentialBuffer)
    assert "experience" in training.buffers
    trainers = training.trainers
    assert isinstance(trainers["policy"], PPOTrainer)
    assert isinstance(trainers["representation"], ReconstructionTrainer)
    assert isinstance(trainers["dynamics"], DynamicsTrainer)
    assert trainers["policy"].buffer_name == "trajectory"
    assert trainers["policy"].steps_per_run == 4 * 128 // 32


def test_vae_config_builds_one_trainer(tmp_path: Path) -> None:
    training = training_thread(launch_config("model=vae", "agent=random"), tmp_path)
    assert set(training.models.names) == {"encoder", "decoder"}
    assert [type(t) for t in training.trainers.values()] == [VAETrainer]


def test_curiosity_without_dynamics_and_policy_fails_at_build(tmp_path: Path) -> None:
    cfg = launch_config("model=vae", "agent=curiosity")
    with pytest.raises(KeyError, match=r"dynamics.*\['decoder', 'encoder'\]"):
        build(cfg, tmp_path)


FAST = [
    "max_uptime=200",  # a safety net: the runs below stop once they have learned
    "threads.inference.interval=0.03",
    "model.trainers.representation.min_new_steps=8",
    "model.trainers.dynamics.min_new_steps=8",
]


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_a_short_curiosity_run_acts_learns_its_policy_and_logs(tmp_path: Path) -> None:
    cfg = launch_config(
        "agent=curiosity",
        "model=world_model",
        *FAST,
        "agent.trainers.policy.rollout_length=16",
        "agent.trainers.policy.minibatch_size=8",
        api=True,
    )
    main = build(cfg, tmp_path)
    (inference,) = [t for t in main.threads if not isinstance(t, TrainingThread)]
    assert isinstance(inference.interaction.agent, CuriosityAgent)
    (training,) = [t for t in main.threads if isinstance(t, TrainingThread)]
    trainers = training.trainers
    assert run_until(main, lambda: all(t.runs >= 1 for t in trainers.values())) == 0
    assert trainers["policy"].runs >= 1
    assert training.models._current.models["policy"].version >= 1, "the policy was published"
    inference_tags = scalar_tags(tmp_path / "tensorboard")
    assert {
        "inference/intrinsic_reward",
        "inference/policy_value",
        "inference/action_entropy/move_vertical",
        "inference/world/cells_visited",
    } <= inference_tags
    training_tags = scalar_tags(tmp_path / "tensorboard")
    assert {"training/policy/policy_loss", "training/dynamics/frame"} <= training_tags


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_a_short_vae_run_with_the_random_agent_learns(tmp_path: Path) -> None:
    cfg = launch_config(
        "model=vae", "agent=random", *FAST[:2], "model.trainers.vae.min_new_steps=8", api=True
    )
    main = build(cfg, tmp_path)
    (training,) = [t for t in main.threads if isinstance(t, TrainingThread)]
    assert run_until(main, lambda: training.trainers["vae"].runs >= 1) == 0
    assert training.trainers["vae"].runs >= 1
    assert {"training/vae/kl", "training/vae/reconstruction"} <= scalar_tags(
        tmp_path / "tensorboard"
    )
