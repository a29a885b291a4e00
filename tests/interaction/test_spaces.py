"""Declared spaces: observations by modality, actions by space, rewards and episodes.

A world declares what it observes and accepts; the runtime checks the agent, the
trainers and the buffers against that before the run, and the first observation once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
import torch
from hydra import compose, initialize_config_dir
from runtime_parts import BrightnessTrainer, ScriptedWorld, build_runtime

from ami.data import StepCollector
from ami.experiment import build
from ami.experiment_checks import ConfigError
from ami.interaction import Environment, Interaction
from ami.interaction.agents import CuriosityAgent, RandomAgent
from ami.interaction.environment import Feedback
from ami.interaction.spaces import (
    Box,
    MultiDiscrete,
    Observation,
    check_modality_names,
    check_observation,
    image_space,
)

ROOT = Path(__file__).resolve().parents[2]


def test_a_box_names_the_key_and_what_it_expected() -> None:
    box = Box((2, 3), 0.0, 1.0)
    box.check("x", torch.zeros(2, 3))
    with pytest.raises(
        ValueError, match=r"x: expected Box\(shape=\(2, 3\), float32.*got shape \(3,"
    ):
        box.check("x", torch.zeros(3, 2))
    with pytest.raises(ValueError, match="got shape \\(2, 3\\) float64"):
        box.check("x", torch.zeros(2, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"x: expected values in \[0.0, 1.0\], got \[0.0, 2.0\]"):
        box.check("x", torch.tensor([[0.0, 2.0, 0.0], [0.0, 0.0, 0.0]]))


def test_multi_discrete_actions_need_one_valid_choice_per_category() -> None:
    space = MultiDiscrete((3, 2))
    space.check("a", torch.tensor([2, 1]))
    with pytest.raises(ValueError, match=r"a: category 1 must be in \[0, 2\), got 2"):
        space.check("a", torch.tensor([0, 2]))
    with pytest.raises(ValueError, match=r"expected MultiDiscrete\(\[3, 2\]\), got shape \(3,\)"):
        space.check("a", torch.tensor([0, 0, 0]))


def test_an_observation_must_be_the_declared_mapping() -> None:
    space = image_space(4, 4)
    check_observation({"image": torch.zeros(3, 4, 4)}, space, "W")
    with pytest.raises(ValueError, match=r"W.observe\(\) returned a Tensor; an observation is a"):
        check_observation(torch.zeros(3, 4, 4), space, "W")  # type: ignore[arg-type]
    with pytest.raises(
        ValueError, match=r"returned modalities \['audio'\], but .* declared \['image'\]"
    ):
        check_observation({"audio": torch.zeros(3, 4, 4)}, space, "W")


def test_modality_names_may_not_take_the_record_keys_of_agents() -> None:
    with pytest.raises(ValueError, match=r"modality name\(s\) \['action'\]"):
        check_modality_names(["image", "action"], "world")


class WrongSizeWorld(ScriptedWorld):
    def observation_space(self) -> dict[str, Box]:
        return image_space(8, 8)


def test_the_first_observation_is_checked_against_the_declaration() -> None:
    agent = RandomAgent([3, 3, 3, 2, 2])
    agent.bind(None, StepCollector())  # type: ignore[arg-type]
    interaction = Interaction(WrongSizeWorld(), agent)
    interaction.setup()
    with pytest.raises(
        ValueError, match=r"WrongSizeWorld observation 'image': expected Box\(shape=\(3, 8, 8\)"
    ):
        interaction.step()


class EpisodicWorld(ScriptedWorld):
    """A reward of 1 per step; an episode ends every ``length`` steps (truncated at the 3rd)."""

    def __init__(self, length: int = 4) -> None:
        super().__init__()
        self.length = length
        self.affected = 0

    def affect(self, action: torch.Tensor) -> None:
        super().affect(action)
        self.affected += 1

    def feedback(self) -> Feedback:
        ended = self.affected % self.length == 0
        third = self.affected == 3 * self.length
        return Feedback(reward=1.0, terminated=ended and not third, truncated=third)


def test_rewards_reach_the_records_and_episodes_are_charted_when_they_end() -> None:
    collector = StepCollector()
    agent = RandomAgent([3, 3, 3, 2, 2])
    agent.bind(None, collector)  # type: ignore[arg-type]
    interaction = Interaction(EpisodicWorld(length=4), agent)
    interaction.setup()
    seen: list[Mapping[str, float]] = []
    for _ in range(12):
        interaction.step()
        seen.append(interaction.metrics())
    records = list(collector.take())
    assert [float(r["reward"]) for r in records] == [1.0] * 12
    assert [i for i, r in enumerate(records) if r["terminated"]] == [3, 7]
    assert [i for i, r in enumerate(records) if r["truncated"]] == [11]
    ends = [i for i, m in enumerate(seen) if "world/episode_return" in m]
    assert ends == [3, 7, 11]
    assert all(seen[i]["world/episode_return"] == 4.0 for i in ends)
    assert all(seen[i]["world/episode_length"] == 4.0 for i in ends)
    assert seen[11]["world/episodes"] == 3.0 and interaction.episodes == 3
    assert "world/episode_return" not in seen[4]

    resumed = Interaction(EpisodicWorld(), agent)
    for _ in range(2):
        interaction.step()
    resumed.load_state_dict(interaction.state_dict())
    assert resumed.state_dict() == {"episodes": 3, "episode_return": 2.0, "episode_length": 2}
    fresh_world = EpisodicWorld()
    fresh_world.resumes_episodes = False  # as a Gymnasium env: a resume starts anew
    restarted = Interaction(fresh_world, agent)
    restarted.load_state_dict(interaction.state_dict())
    assert restarted.state_dict() == {"episodes": 3, "episode_return": 0.0, "episode_length": 0}


def test_the_random_agent_drives_whatever_space_the_world_declares() -> None:
    agent = RandomAgent(action_choices=None, seed=3)
    agent.bind(None, StepCollector())  # type: ignore[arg-type]
    agent.fit_action_space(Box((2,), -1.0, 1.0))
    actions = torch.stack([agent.step({"image": torch.zeros(3, 4, 4)}) for _ in range(200)])
    assert actions.dtype == torch.float32 and actions.shape == (200, 2)
    assert actions.min() >= -1.0 and actions.max() <= 1.0 and actions.std() > 0.4

    choices = RandomAgent(action_choices=None)
    choices.fit_action_space(MultiDiscrete((4,)))
    drawn = {int(choices.step({})[0]) for _ in range(100)}
    assert drawn == {0, 1, 2, 3}


def test_an_agent_refuses_a_space_it_cannot_drive_showing_both() -> None:
    with pytest.raises(
        ValueError,
        match=r"drives MultiDiscrete\(\[3, 3\]\), but the world takes MultiDiscrete\(\[2\]\)",
    ):
        RandomAgent([3, 3]).fit_action_space(MultiDiscrete((2,)))
    with pytest.raises(ValueError, match="needs a bounded Box"):
        RandomAgent(None).fit_action_space(Box((1,)))
    with pytest.raises(
        ValueError, match=r"drives MultiDiscrete actions of 5 categories.*takes Box"
    ):
        CuriosityAgent().fit_action_space(Box((1,), -1.0, 1.0))


def compose_default(*overrides: str) -> Any:
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose("launch", overrides=["web_api=none", "max_uptime=1", *overrides])


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            "model.trainers.representation.modality=audio",
            r"model.trainers.representation reads modality 'audio', but SimEnvironment observes "
            r"image: Box\(shape=\(3, 84, 84\)",
        ),
        ("agent.agent.modality=audio", r"agent.agent.modality='audio', but SimEnvironment"),
        (
            "buffer.keys=[observation,action]",
            r"buffer.keys names 'observation': observations are stored per modality",
        ),
        (
            "buffer.keys=[action]",
            r"model.trainers.representation reads modality 'image', but its buffer 'experience' "
            r"stores only \['action'\]",
        ),
    ],
)
def test_a_part_reading_what_the_world_does_not_observe_is_refused_at_build(
    tmp_path: Path, override: str, message: str
) -> None:
    if override.startswith("buffer.keys"):
        override = f"{override} ~buffer.dtypes"
    with pytest.raises(ConfigError, match=message):
        build(compose_default(*override.split()), tmp_path)


class BeaconWorld(ScriptedWorld):
    """The scripted camera plus a toy modality: a 2-vector beacon that counts the steps."""

    def observation_space(self) -> dict[str, Box]:
        return {**image_space(4, 4), "beacon": Box((2,), 0.0, 1.0)}

    def observe(self) -> Observation:
        observation = dict(super().observe())
        observation["beacon"] = torch.tensor([(self.steps % 10) / 10, 1.0])
        return observation


class BeaconTrainer(BrightnessTrainer):
    """Learns the beacon's first entry from the image: it reads the new modality."""

    def __init__(self) -> None:
        super().__init__()
        self.modalities = ("beacon",)
        self.seen: list[torch.Tensor] = []

    def compute_loss(self, batch: Mapping[str, torch.Tensor]) -> Mapping[str, torch.Tensor]:
        self.seen.append(batch["beacon"])
        prediction = self.module("brightness")(batch["image"].flatten(1)).squeeze(-1)
        return {"loss": (prediction - batch["beacon"][:, 0]).pow(2).mean()}


@pytest.mark.usefixtures("keep_main_thread_name")
def test_a_toy_modality_flows_from_the_world_to_a_trainer(tmp_path: Path) -> None:
    trainer = BeaconTrainer()
    runtime = build_runtime(tmp_path, world=BeaconWorld(), trainer=trainer, max_uptime=None)

    def stop_when_trained() -> str | None:
        return "trained" if trainer.global_step >= 6 else None

    runtime.main.stop_when = stop_when_trained
    assert runtime.main.run() == 0
    assert trainer.global_step >= 6
    beacons = torch.cat(trainer.seen)
    assert beacons.shape[1] == 2 and torch.all(beacons[:, 1] == 1.0)
    assert len(set(beacons[:, 0].tolist())) > 1, "the beacons of different steps"


def test_a_world_must_declare_what_it_observes() -> None:
    class Undeclared(Environment):
        def observe(self) -> Observation:
            return {}

        def affect(self, action: torch.Tensor) -> None:
            pass

    with pytest.raises(TypeError, match="observation_space"):
        Undeclared()  # type: ignore[abstract]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ("interaction=sim_osc time_scale=2", r"time_scale=2: SimOscEnvironment runs on real time"),
        ("interaction=vrchat time_scale=0.5", r"time_scale=0.5: SensorActuatorEnvironment runs"),
    ],
)
def test_a_world_on_real_time_refuses_a_time_scale_before_start(
    tmp_path: Path, overrides: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        build(compose_default(*overrides.split()), tmp_path)


def test_a_time_scale_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="time_scale"):
        build(compose_default("time_scale=0"), tmp_path)


def test_recordings_and_the_simulation_follow_their_steps(
    video_of: Callable[..., Path],
) -> None:
    from ami.interaction.io import CameraSensor, VideoFilesSensor
    from ami.interaction.worlds import SensorActuatorEnvironment, SimEnvironment, SimWorld

    video = video_of("a.mkv", [(0, 0, 255)] * 3)
    assert SimEnvironment(SimWorld(16, 16)).time_scalable
    assert SensorActuatorEnvironment(VideoFilesSensor(str(video))).time_scalable
    assert not SensorActuatorEnvironment(CameraSensor(0)).time_scalable
