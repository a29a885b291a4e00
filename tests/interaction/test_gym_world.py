"""Gymnasium environments as worlds: real Gymnasium envs, stepped through the real runtime parts."""

from __future__ import annotations

import logging
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf

from ami.data import StepCollector
from ami.experiment import build
from ami.interaction import Interaction
from ami.interaction.agents import RandomAgent
from ami.interaction.spaces import Box, MultiDiscrete, check_observation
from ami.interaction.worlds import GymEnvironment
from ami.interaction.worlds.gym_pixels import GRID_ID
from ami.reports.event_reading import read_events

ROOT = Path(__file__).resolve().parents[2]
CONF = ROOT / "conf"


def compose_launch(*overrides: str) -> DictConfig:
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("launch", overrides=list(overrides))


def driven(
    env: GymEnvironment, agent: RandomAgent | None = None
) -> tuple[Interaction, StepCollector]:
    """The world coupled with a random agent that took the world's action space."""
    collector = StepCollector()
    agent = agent or RandomAgent()
    agent.bind(None, collector)  # type: ignore[arg-type]  (a random agent calls no model)
    agent.fit_action_space(env.action_space())
    interaction = Interaction(env, agent)
    interaction.setup()
    return interaction, collector


class DictWorld(gym.Env[dict[str, np.ndarray], np.ndarray]):
    """A Dict observation (a vector and a camera) and a Box action with per-dimension bounds."""

    def __init__(self, flag: bool = False) -> None:
        children: dict[str, spaces.Space[Any]] = {
            "pose": spaces.Box(-1.0, 1.0, (2,), np.float32),
            "camera": spaces.Box(0, 255, (16, 8, 3), np.uint8),
        }
        if flag:
            children["flag"] = spaces.Discrete(2)
        self.observation_space = spaces.Dict(children)
        self.action_space = spaces.Box(
            np.array([0.0, -1.0], np.float32), np.array([1.0, 3.0], np.float32)
        )
        self.actions: list[np.ndarray] = []

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        super().reset(seed=seed)
        return self._observation(), {}

    def step(
        self, action: np.ndarray
    ) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        self.actions.append(np.array(action))
        return self._observation(), 0.0, False, False, {}

    def _observation(self) -> dict[str, np.ndarray]:
        camera = np.zeros((16, 8, 3), np.uint8)
        camera[0, 0] = (255, 0, 51)  # one pixel: red, no green, a fifth of blue
        return {"pose": np.array([0.5, -0.5], np.float32), "camera": camera}


gym.register("ami-tests/Dict-v0", entry_point=DictWorld)  # type: ignore[arg-type]


# --- spaces and steps -----------------------------------------------------------------


def test_cartpole_observes_a_vector_and_takes_one_category_of_two_choices() -> None:
    env = GymEnvironment("CartPole-v1", seed=0)
    space = env.observation_space()
    assert space == {"vector": Box((4,), -math.inf, math.inf, torch.float32)}
    assert env.action_space() == MultiDiscrete((2,))
    env.setup()
    first = env.observe()
    check_observation(first, space, "CartPole")
    assert first["vector"].dtype == torch.float32 and first["vector"].shape == (4,)
    env.affect(torch.tensor([1]))
    assert env.feedback().reward == 1.0 and not env.feedback().episode_ended
    second = env.observe()["vector"]
    assert second[1] > first["vector"][1], "pushing right speeds the cart up to the right"
    env.teardown()


def test_an_action_outside_the_space_is_refused_naming_the_env() -> None:
    env = GymEnvironment("CartPole-v1", seed=0)
    env.setup()
    with pytest.raises(ValueError, match=r"CartPole-v1 action: category 0 must be in \[0, 2\)"):
        env.affect(torch.tensor([2]))
    env.teardown()


def test_an_episode_end_resets_the_env_and_breaks_continuity_once() -> None:
    env = GymEnvironment("CartPole-v1", seed=0, max_episode_steps=5)
    env.setup()
    assert not env.broke_continuity()
    ends, breaks, observations = [], [], []
    for _ in range(7):
        env.affect(torch.tensor([0]))
        ends.append(env.feedback().truncated)
        observations.append(env.observe()["vector"])
        breaks.append(env.broke_continuity())
    assert ends == [False, False, False, False, True, False, False]
    assert breaks == ends
    # Pushed left for five steps the cart moves left; the reset puts it back near the middle.
    assert observations[3][1] < -0.5 and abs(float(observations[4][1])) < 0.05
    assert env.episodes == 2
    env.teardown()


def test_a_pole_that_falls_terminates_the_episode() -> None:
    env = GymEnvironment("CartPole-v1", seed=0)
    env.setup()
    steps = 0
    while not env.feedback().episode_ended and steps < 100:
        env.affect(torch.tensor([1]))
        steps += 1
    assert env.feedback().terminated and not env.feedback().truncated
    assert steps < 100 and env.broke_continuity()
    env.teardown()


def test_the_first_reset_takes_the_seed_and_later_ones_carry_on_its_generator() -> None:
    def episode_starts(seed: int) -> list[torch.Tensor]:
        env = GymEnvironment("CartPole-v1", seed=seed, max_episode_steps=1)
        env.setup()
        starts = [env.observe()["vector"]]
        for _ in range(2):
            env.affect(torch.tensor([0]))
            starts.append(env.observe()["vector"])
        env.teardown()
        return starts

    first, again, other = episode_starts(3), episode_starts(3), episode_starts(4)
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert not torch.equal(first[0], first[1]) and not torch.equal(first[1], first[2])
    assert not torch.equal(first[0], other[0])


# --- through the runtime's parts ----------------------------------------------------------


def test_rewards_reach_the_records_and_episodes_end_their_segments() -> None:
    interaction, collector = driven(GymEnvironment("CartPole-v1", seed=0, max_episode_steps=5))
    for _ in range(12):
        interaction.step()
    taken = collector.take()
    records, segments = list(taken), taken.segments
    assert len(records) == 12
    keys = {"vector", "action", "reward", "terminated", "truncated"}
    assert all(set(record) == keys for record in records)
    assert all(float(record["reward"]) == 1.0 for record in records)
    assert [bool(record["truncated"]) for record in records] == ([False] * 4 + [True]) * 2 + [
        False
    ] * 2
    assert not any(bool(record["terminated"]) for record in records)
    assert segments[:5] == [segments[0]] * 5 and segments[5:10] == [segments[5]] * 5
    assert len({segments[0], segments[5], segments[10]}) == 3
    metrics = interaction.metrics()  # after step 12: two episodes of 5 ended
    assert metrics["world/episodes"] == 2.0 and metrics["world/reward"] == 1.0
    interaction.teardown()


def test_the_episode_return_and_length_are_reported_when_an_episode_ends() -> None:
    interaction, _ = driven(GymEnvironment("CartPole-v1", seed=0, max_episode_steps=4))
    reported = []
    for _ in range(8):
        interaction.step()
        reported.append(interaction.metrics().get("world/episode_return"))
    assert reported == [None, None, None, 4.0, None, None, None, 4.0]
    assert interaction.metrics()["world/episode_length"] == 4.0
    interaction.teardown()


def test_a_box_action_env_is_driven_by_the_random_agent() -> None:
    env = GymEnvironment("Pendulum-v1", seed=0)
    assert env.action_space() == Box((1,), -2.0, 2.0, torch.float32)
    assert env.observation_space()["vector"].shape == (3,)
    interaction, collector = driven(env, RandomAgent(action_repeat=1, seed=1))
    for _ in range(20):
        interaction.step()
    records = list(collector.take())
    actions = torch.stack([record["action"] for record in records])
    assert actions.dtype == torch.float32 and actions.shape == (20, 1)
    assert actions.min() >= -2.0 and actions.max() <= 2.0 and actions.std() > 0.3
    rewards = [float(record["reward"]) for record in records]
    assert all(reward <= 0.0 for reward in rewards) and len(set(rewards)) > 1
    interaction.teardown()


def test_per_dimension_box_bounds_are_driven_in_minus_one_to_one_and_rescaled() -> None:
    env = GymEnvironment("ami-tests/Dict-v0", seed=0)
    assert env.action_space() == Box((2,), -1.0, 1.0, torch.float32)
    env.setup()
    for action in ([-1.0, -1.0], [1.0, 1.0], [0.0, 0.0]):
        env.affect(torch.tensor(action))
    sent = env.env.unwrapped.actions
    np.testing.assert_allclose(sent, [[0.0, -1.0], [1.0, 3.0], [0.5, 1.0]])
    env.teardown()


def test_a_dict_observation_is_one_modality_per_key() -> None:
    env = GymEnvironment("ami-tests/Dict-v0", seed=0)
    space = env.observation_space()
    assert space == {
        "camera": Box((3, 16, 8), 0.0, 1.0, torch.float32),
        "pose": Box((2,), -1.0, 1.0, torch.float32),
    }
    env.setup()
    observation = env.observe()
    check_observation(observation, space, "DictWorld")
    assert observation["pose"].tolist() == [0.5, -0.5]
    assert observation["camera"][:, 0, 0].tolist() == pytest.approx([1.0, 0.0, 0.2])
    env.teardown()


def test_a_dict_child_that_is_not_a_box_is_refused_naming_it() -> None:
    with pytest.raises(ValueError, match=r"observation 'flag': Discrete\(2\) is not supported"):
        GymEnvironment("ami-tests/Dict-v0", seed=0, flag=True)


def test_an_observation_space_it_cannot_translate_is_refused_with_the_space() -> None:
    with pytest.raises(ValueError, match=r"FrozenLake-v1'.*observation space Discrete\(16\)"):
        GymEnvironment("FrozenLake-v1", seed=0)


def test_the_pixel_env_observes_an_image_and_pays_at_the_goal() -> None:
    env = GymEnvironment(GRID_ID, seed=0)
    space = env.observation_space()
    assert space == {"image": Box((3, 48, 48), 0.0, 1.0, torch.float32)}
    assert env.action_space() == MultiDiscrete((5,))
    env.setup()
    image = env.observe()["image"]
    check_observation({"image": image}, space, "GridWorld")
    red = (image[0] > 0.8) & (image[1] < 0.2)
    assert int(red.sum()) == 8 * 8, "the agent is one red cell of 8x8 pixels"
    grid = env.env.unwrapped
    rewards = []
    for _ in range(20):  # walk to the goal: rows first, then columns
        (row, col), (goal_row, goal_col) = grid.agent, grid.goal
        move = 2 if goal_row > row else 1 if goal_row < row else 4 if goal_col > col else 3
        env.affect(torch.tensor([move]))
        rewards.append(env.feedback().reward)
        if env.feedback().terminated:
            break
    assert rewards[-1] == 1.0 and set(rewards[:-1]) <= {-0.01}
    assert env.broke_continuity()
    env.teardown()


def test_a_bad_env_id_fails_naming_interaction_env_id() -> None:
    with pytest.raises(ValueError, match=r"interaction\.env_id='NoSuchEnv-v0'.*doesn't exist"):
        GymEnvironment("NoSuchEnv-v0", seed=0)


def test_a_bad_env_id_fails_the_launch_before_start_naming_the_key(tmp_path: Path) -> None:
    cfg = compose_launch(
        "interaction=gym", "interaction.env_id=NoSuchEnv-v0", "fabric.accelerator=cpu"
    )
    with pytest.raises(Exception, match=r"interaction\.env_id='NoSuchEnv-v0'"):
        build(cfg, tmp_path)
    assert not (tmp_path / "tensorboard").exists()


def test_a_window_is_refused() -> None:
    with pytest.raises(ValueError, match=r"render_mode='human'.*no display"):
        GymEnvironment("CartPole-v1", seed=0, render_mode="human")


def test_without_gymnasium_the_error_says_how_to_install_it() -> None:
    script = (
        "import sys; sys.modules['gymnasium'] = None\n"
        "from ami.interaction.worlds import GymEnvironment\n"  # the import itself needs none
        "GymEnvironment('CartPole-v1', seed=0)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 1
    assert "interaction=gym needs Gymnasium: pip install -e '.[gym]'" in result.stderr


# --- checkpoints ----------------------------------------------------------------------------


def test_a_resume_keeps_the_episode_count_and_starts_a_new_episode(
    caplog: pytest.LogCaptureFixture,
) -> None:
    env = GymEnvironment("CartPole-v1", seed=0, max_episode_steps=2)
    env.setup()
    first_start = env.observe()["vector"]
    for _ in range(4):
        env.affect(torch.tensor([0]))
    state = env.state_dict()
    env.teardown()
    assert state == {"episodes": 3}
    resumed = GymEnvironment("CartPole-v1", seed=0, max_episode_steps=2)
    with caplog.at_level(logging.INFO, logger="ami.interaction.worlds.gym"):
        resumed.load_state_dict(state)
        resumed.setup()
    notes = [r.getMessage() for r in caplog.records if "cannot be saved" in r.getMessage()]
    assert notes == [
        "CartPole-v1 cannot be saved (a Gymnasium env): the resumed run starts a new "
        "episode, number 4"
    ]
    assert resumed.episodes == 4
    assert not torch.equal(resumed.observe()["vector"], first_start), "not episode 1 again"
    resumed.teardown()


# --- configs ----------------------------------------------------------------------------------


def test_the_config_keys_are_resolved_from_the_env() -> None:
    composed = compose_launch("interaction=gym")
    cartpole = composed.interaction
    assert cartpole.env_id == "CartPole-v1"  # the default
    assert list(composed.buffer["keys"]) == ["vector", "action"]
    assert composed.buffer.dtypes.image is None  # no image: vectors keep float32
    assert list(cartpole.action_choices) == [2] and list(cartpole.action_names) == ["action_0"]
    assert cartpole.modality == "vector" and list(cartpole.observation_shape) == [4]
    assert cartpole.height is None
    pendulum = compose_launch("interaction=gym", "interaction.env_id=Pendulum-v1").interaction
    assert pendulum.action_choices is None
    grid = compose_launch("interaction=gym", f"interaction.env_id={GRID_ID}").interaction
    assert grid.modality == "image" and list(grid.observation_shape) == [3, 48, 48]
    assert (grid.height, grid.width) == (48, 48) and grid.image_dtype == "float16"
    dictworld = compose_launch("interaction=gym", "interaction.env_id=ami-tests/Dict-v0")
    assert dictworld.interaction.modality == "camera"  # an image, not the first key
    shape = compose_launch(
        "interaction=gym", "interaction.env_id=ami-tests/Dict-v0", "interaction.modality=pose"
    ).interaction.observation_shape
    assert list(shape) == [2]


def test_make_arguments_reach_the_env_and_the_resolved_keys() -> None:
    cfg = compose_launch(
        "interaction=gym", f"interaction.env_id={GRID_ID}", "+interaction.environment.cells=3"
    )
    assert list(cfg.interaction.observation_shape) == [3, 24, 24]
    env = build_env(cfg)
    assert env.observation_space()["image"].shape == (3, 24, 24)
    env.teardown()


def build_env(cfg: DictConfig) -> GymEnvironment:
    from hydra.utils import instantiate

    env = instantiate(cfg.interaction.environment)
    assert isinstance(env, GymEnvironment)
    return env


def test_the_curiosity_agent_names_the_gym_action_categories(tmp_path: Path) -> None:
    cfg = compose_launch("interaction=gym", "fabric.accelerator=cpu")
    assert list(cfg.agent.agent.action_names) == ["action_0"]
    main = build(cfg, tmp_path)
    inference, _ = main.threads
    assert inference.interaction.agent.action_names == ["action_0"]  # type: ignore[attr-defined]
    main._waker.close()


def test_a_box_action_env_with_the_world_model_is_refused_saying_what_works(
    tmp_path: Path,
) -> None:
    cfg = compose_launch(
        "interaction=gym",
        "interaction.env_id=Pendulum-v1",
        "agent=random",
        "fabric.accelerator=cpu",
    )
    with pytest.raises(Exception) as caught:
        build(cfg, tmp_path)
    message = str(caught.value)
    assert "interaction.action_choices=null" in message
    assert "agent=random model.models=null model.trainers=null model.evaluation=null" in message
    ok = compose_launch(
        "interaction=gym",
        "interaction.env_id=Pendulum-v1",
        "agent=random",
        "model.models=null",
        "model.trainers=null",
        "model.evaluation=null",
        "fabric.accelerator=cpu",
    )
    main = build(ok, tmp_path / "ok")
    main._waker.close()


# --- launches ---------------------------------------------------------------------------------


def launch(run_dir: Path, *overrides: str) -> subprocess.CompletedProcess[str]:
    command = [
        sys.executable,
        str(ROOT / "scripts" / "launch.py"),
        *overrides,
        "web_api.port=0",
        f"hydra.run.dir={run_dir}",
    ]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=180)


@pytest.mark.slow
def test_cartpole_with_the_random_agent_and_the_world_model_charts_episode_returns(
    tmp_path: Path,
) -> None:
    result = launch(
        tmp_path,
        "interaction=gym",
        "interaction.env_id=CartPole-v1",
        "agent=random",
        "max_uptime=20",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    scalars = read_events(tmp_path / "tensorboard").scalars
    returns = scalars["inference/world/episode_return"]
    assert len(returns) >= 2, "random CartPole episodes last about 20 steps: 10 s is several"
    assert (returns.values >= 8.0).all() and (returns.values <= 500.0).all()
    lengths = scalars["inference/world/episode_length"]
    assert np.array_equal(lengths.values, returns.values), "CartPole pays 1 per step"
    for trainer in ("representation", "dynamics"):  # the world model learnt from `vector`
        assert len(scalars[f"training/{trainer}/loss"]) > 0, trainer
    config = OmegaConf.load(tmp_path / "config.yaml")
    assert config.model.models.encoder.observation_shape == [4]


@pytest.mark.slow
def test_the_curiosity_agent_runs_on_cartpole(tmp_path: Path) -> None:
    result = launch(tmp_path, "interaction=gym", "interaction.env_id=CartPole-v1", "max_uptime=8")
    assert result.returncode == 0, result.stderr[-3000:]
    scalars = read_events(tmp_path / "tensorboard").scalars
    assert len(scalars["inference/action_entropy/action_0"]) > 10
    assert len(scalars["inference/world/episode_return"]) >= 1
