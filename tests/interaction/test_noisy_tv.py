"""The noisy TV of the built-in world: real renders, channels, metrics, state and config."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException, InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig

import ami.experiment  # noqa: F401  (registers what Hydra needs, as scripts/launch.py does)
from ami.checkpoints.file_format import read, write_file
from ami.interaction.io.actions import Inputs
from ami.interaction.worlds.sim import SimEnvironment, SimOscEnvironment, SimWorld
from ami.interaction.worlds.sim.grid_map import GridMap
from ami.interaction.worlds.sim.raycaster import Raycaster
from ami.interaction.worlds.sim.screen import CHANNELS, SEEN_FRACTION, NoisyScreen, ScreenPlace
from ami.interaction.worlds.sim.world import EYE_HEIGHT
from ami.state import snapshot
from tests.interaction.world_parts import random_actions

CONF = Path(__file__).resolve().parents[2] / "conf"
SIZE = 48
# The screen spans x 11-14 on the face y = 1 of room b's north wall; heading 270 faces north.
CLOSE = (12.5, 2.5, 270.0)  # 1.5 cells in front of it: it fills the view
ACROSS_THE_ROOM = (12.5, 5.5, 270.0)  # 4.5 cells away: about half the view
JUMP = Inputs(jump=True)
STILL = Inputs()


def world(noisy_tv: bool = True, movers: int = 0, seed: int = 0) -> SimWorld:
    return SimWorld(width=SIZE, height=SIZE, seed=seed, movers=movers, noisy_tv=noisy_tv)


def placed(pose: tuple[float, float, float], noisy_tv: bool = True) -> SimWorld:
    made = world(noisy_tv)
    made.place(*pose)
    return made


def changed_columns(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    return np.asarray((before != after).any(axis=(0, 2)))


def compose_launch(*overrides: str) -> DictConfig:
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("launch", overrides=list(overrides))


def test_with_the_screen_on_nothing_but_the_screen_differs_from_the_world_without_it() -> None:
    # Movers included: the screen draws from its own generator, so they move the same.
    on, off = world(True, movers=6, seed=3), world(False, movers=6, seed=3)
    seen = 0
    for action in random_actions(150, seed=2):
        frame_on, frame_off = on.render(), off.render()
        assert not changed_columns(frame_on, frame_off)[~on.screen_columns].any()
        seen += bool(on.screen_columns.any())
        inputs = Inputs(*[(0.0, 1.0, -1.0)[int(a)] for a in action[:3]], bool(action[3]))
        on.step(inputs)
        off.step(inputs)
    assert on.pose == off.pose
    assert np.array_equal(on.movers.positions, off.movers.positions)
    assert off.screen is None and not off.screen_columns.any() and off.screen_fraction == 0.0
    # Then face it: the two worlds differ there, and only there.
    on.place(*ACROSS_THE_ROOM)
    off.place(*ACROSS_THE_ROOM)
    frame_on, frame_off = on.render(), off.render()
    assert changed_columns(frame_on, frame_off).any()
    assert not changed_columns(frame_on, frame_off)[~on.screen_columns].any()


def test_the_default_config_builds_the_world_without_a_screen() -> None:
    env = instantiate(compose_launch("seed=5").interaction.environment)
    plain = SimEnvironment(SimWorld(seed=5))
    assert env.world.screen is None
    for action in random_actions(30, seed=5):
        assert torch.equal(env.observe()["image"], plain.observe()["image"])
        env.affect(action)
        plain.affect(action)
    assert env.state_dict().keys() == plain.state_dict().keys()
    assert "screen" not in env.state_dict()


@pytest.mark.parametrize("channel", range(len(CHANNELS)), ids=CHANNELS)
def test_facing_the_screen_consecutive_frames_differ_in_its_columns_only(channel: int) -> None:
    tv = placed(ACROSS_THE_ROOM)
    for _ in range(channel):
        tv.screen.switch()  # type: ignore[union-attr]
    tv.step(STILL)
    previous = tv.render()
    columns = tv.screen_columns
    assert 0.2 < columns.mean() < 0.8 and tv.screen_fraction == columns.mean()
    for _ in range(4):
        tv.step(STILL)
        frame = tv.render()
        changed = changed_columns(previous, frame)
        assert not changed[~columns].any()
        assert changed[columns].mean() > 0.8  # the rim's columns may stay
        previous = frame
    still = placed(ACROSS_THE_ROOM, noisy_tv=False)
    frame = still.render()
    still.step(STILL)
    assert np.array_equal(still.render(), frame)


def test_rendering_twice_without_a_step_shows_the_same_picture() -> None:
    tv = placed(CLOSE)
    assert np.array_equal(tv.render(), tv.render())


@pytest.mark.parametrize(
    ("cells", "facing", "heading"),
    [
        ([(x, 0) for x in range(1, 5)], (0, 1), 270.0),  # north wall, looking north
        ([(x, 5) for x in range(1, 5)], (0, -1), 90.0),  # south wall
        ([(0, y) for y in range(1, 5)], (1, 0), 180.0),  # west wall
        ([(5, y) for y in range(1, 5)], (-1, 0), 0.0),  # east wall
    ],
)
def test_a_screen_on_any_wall_reads_left_to_right_as_the_viewer_sees_it(
    cells: list[tuple[int, int]], facing: tuple[int, int], heading: float
) -> None:
    grid = GridMap(["######", *["#aaaa#"] * 4, "######"])
    screen = NoisyScreen(ScreenPlace(grid, cells, facing, top=0.25, bottom=0.75), seed=0)
    screen.texture[...] = np.linspace(0.1, 0.9, screen.texture.shape[1])[None, :, None]
    view = Raycaster(grid, SIZE, SIZE, 70.0).render_view(
        3.0, 3.0, np.radians(heading), EYE_HEIGHT, screen=screen
    )
    assert view.screen_columns.all()  # 2 cells away, the 4-cell screen fills the view
    brightness = view.image[SIZE // 2, :, 0].astype(int)
    assert (np.diff(brightness) >= 0).all() and brightness[-1] - brightness[0] > 60


def test_a_jump_press_facing_the_screen_switches_the_channel() -> None:
    tv = placed(CLOSE)
    assert tv.screen is not None and tv.screen.channel == 0
    tv.step(JUMP)
    assert (tv.screen.channel, tv.metrics()["channel_switches"]) == (1, 1.0)
    for _ in range(8):  # held: no more switches, as holding jump does not hop again
        tv.step(JUMP)
    assert tv.screen.channel == 1
    tv.step(STILL)
    tv.step(JUMP)
    assert tv.screen.channel == 2
    for _ in range(3):
        tv.step(STILL)
        tv.step(JUMP)
    assert tv.screen.channel == 5 % len(CHANNELS)
    assert tv.metrics()["channel_switches"] == 5.0


def test_the_channel_changes_what_the_screen_shows() -> None:
    tv = placed(CLOSE)
    middle = tv.render()[SIZE // 2 - 4 : SIZE // 2 + 4]  # rows of the screen at eye level
    assert (middle[..., 0] == middle[..., 1]).all() and (middle[..., 1] == middle[..., 2]).all()
    tv.step(JUMP)
    colour = tv.render()[SIZE // 2 - 4 : SIZE // 2 + 4].astype(int)
    assert (np.abs(colour[..., 0] - colour[..., 1]) > 30).mean() > 0.3


@pytest.mark.parametrize(
    ("pose", "switches"),
    [
        ((12.5, 2.9, 270.0), True),  # 1.9 cells away
        ((12.5, 3.1, 270.0), False),  # 2.1 cells away
        ((12.5, 5.5, 270.0), False),  # across the room, though in full view
        ((12.5, 2.5, 90.0), False),  # close, but facing away
        ((10.0, 1.5, 270.0), False),  # close, facing the wall beside it
    ],
)
def test_only_a_press_facing_the_screen_within_two_cells_switches_it(
    pose: tuple[float, float, float], switches: bool
) -> None:
    tv = placed(pose)
    tv.step(JUMP)
    assert tv.screen is not None and (tv.screen.channel == 1) == switches
    assert tv.metrics()["channel_switches"] == float(switches)


def test_metrics_count_the_steps_spent_watching_and_are_zero_without_a_screen() -> None:
    zeros = {"screen_in_view": 0.0, "screen_steps": 0.0, "channel_switches": 0.0}
    off = placed(CLOSE, noisy_tv=False)
    off.render()
    assert {key: off.metrics()[key] for key in zeros} == zeros
    tv = placed(CLOSE)
    for _ in range(3):
        tv.render()
        tv.render()  # drawn twice, watched for one step
        tv.step(STILL)
    assert tv.metrics()["screen_in_view"] == 1.0 and tv.metrics()["screen_steps"] == 3.0
    tv.place(12.5, 3.5, 90.0)  # facing away from it
    tv.render()
    tv.step(STILL)
    metrics = tv.metrics()
    assert metrics["screen_in_view"] == 0.0 and metrics["screen_steps"] == 3.0
    assert set(metrics) == {"x", "y", "heading", "cells_visited", "cells_total", *zeros}


def test_a_step_with_the_screen_at_the_edge_of_view_is_not_counted() -> None:
    # Turn until the screen covers some columns, but fewer than SEEN_FRACTION of them.
    tv = placed((12.5, 5.5, 205.0))
    fractions = []
    for _ in range(30):
        tv.render()
        fractions.append(tv.screen_fraction)
        if 0.0 < tv.screen_fraction < SEEN_FRACTION:
            break
        tv.step(Inputs(look_horizontal=0.1))  # 1.2 degrees right
    assert 0.0 < fractions[-1] < SEEN_FRACTION
    assert tv.metrics()["screen_steps"] == sum(f >= SEEN_FRACTION for f in fractions)


def test_the_state_round_trip_through_a_checkpoint_continues_identically(tmp_path: Path) -> None:
    original = SimEnvironment(world(movers=3, seed=1))
    original.world.place(12.5, 3.5, 270.0)
    plan = random_actions(60, seed=4)
    for action in plan[:30]:
        original.observe()
        original.affect(action)
    original.world.place(*CLOSE)
    for _ in range(2):  # switch twice more: from wherever the plan left it, to another one
        original.affect(torch.tensor([0, 0, 0, 0, 0]))
        original.affect(torch.tensor([0, 0, 0, 1, 0]))
    original.observe()
    saved_channel = original.world.screen.channel  # type: ignore[union-attr]
    assert saved_channel != 0 and original.metrics()["channel_switches"] >= 2
    write_file(tmp_path / "world.ckpt", snapshot(original.state_dict()))
    copy = SimEnvironment(world(movers=3, seed=1))
    fresh = SimEnvironment(world(movers=3, seed=1))
    copy.load_state_dict(read(tmp_path / "world.ckpt"))
    fresh.load_state_dict({k: v for k, v in read(tmp_path / "world.ckpt").items() if k != "screen"})
    assert copy.world.screen is not None and copy.world.screen.channel == saved_channel
    assert copy.metrics() == original.metrics()
    frames_differ = False
    for action in plan[30:]:
        frame = original.observe()["image"]
        assert torch.equal(copy.observe()["image"], frame)
        frames_differ |= not torch.equal(fresh.observe()["image"], frame)
        for env in (original, copy, fresh):
            env.affect(action)
    assert copy.metrics() == original.metrics()
    assert frames_differ  # without the screen's state the picture goes its own way


def test_a_world_without_a_saved_screen_warns_when_it_has_one(
    caplog: pytest.LogCaptureFixture,
) -> None:
    saved = world(noisy_tv=False).state_dict()
    with caplog.at_level(logging.WARNING):
        world(noisy_tv=True).load_state_dict(saved)
    assert "interaction.world.noisy_tv" in caplog.text
    world(noisy_tv=False).load_state_dict(world(noisy_tv=True).state_dict())  # ignored


@pytest.mark.parametrize("value", [1, 0, "yes", "true", None, 1.0])
def test_a_noisy_tv_that_is_not_a_bool_is_refused_naming_the_key(value: object) -> None:
    with pytest.raises(ValueError, match=r"interaction\.world\.noisy_tv must be true or false"):
        SimWorld(noisy_tv=value)  # type: ignore[arg-type]


def test_a_custom_layout_without_the_screen_wall_is_refused_naming_the_key() -> None:
    layout = ["#####", "#aaa#", "#####"]
    assert SimWorld(layout=layout, movers=0).screen is None
    with pytest.raises(ValueError, match=r"interaction\.world\.noisy_tv=true needs"):
        SimWorld(layout=layout, movers=0, noisy_tv=True)


@pytest.mark.parametrize("option", ["sim", "sim_osc"])
def test_the_command_line_key_turns_the_screen_on_in_both_sim_configs(option: str) -> None:
    cfg = compose_launch(f"interaction={option}", "interaction.world.noisy_tv=true")
    env = instantiate(cfg.interaction.environment)
    assert isinstance(env, SimOscEnvironment) == (option == "sim_osc")
    assert env.world.screen is not None
    default = instantiate(compose_launch(f"interaction={option}").interaction.environment)
    assert default.world.screen is None


def test_a_misspelt_key_or_a_non_bool_value_fails_at_composition_or_build() -> None:
    with pytest.raises(ConfigCompositionException, match=r"interaction\.world\.noisy_tvv"):
        compose_launch("interaction.world.noisy_tvv=true")
    cfg = compose_launch("interaction.world.noisy_tv=1")
    with pytest.raises(InstantiationException, match=r"interaction\.world\.noisy_tv"):
        instantiate(cfg.interaction.environment)
