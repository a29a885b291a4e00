from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ami.interaction.io.actions import Inputs
from ami.interaction.worlds.sim import SimEnvironment, SimWorld
from ami.interaction.worlds.sim.grid_map import GridMap
from ami.interaction.worlds.sim.raycaster import Raycaster, Sprites
from ami.interaction.worlds.sim.world import BODY_RADIUS, EYE_HEIGHT
from tests.interaction.world_parts import random_actions

NOOP = torch.tensor([0, 0, 0, 0, 0])
# Room "a" spans cells x 1..7, y 1..6; (4.5, 3.5) is in its middle, far from every wall.
MIDDLE_OF_A = (4.5, 3.5)


def still_env(x: float = MIDDLE_OF_A[0], y: float = MIDDLE_OF_A[1], heading: float = 0.0):
    """A world without movers: only the agent's actions change the frame."""
    env = SimEnvironment(SimWorld(width=48, height=48, seed=0, movers=0))
    env.world.place(x, y, heading)
    return env


def test_observations_are_rgb_floats_of_the_configured_size() -> None:
    observation = SimEnvironment(SimWorld(width=64, height=40)).observe()["image"]
    assert observation.shape == (3, 40, 64) and observation.dtype == torch.float32
    assert observation.min() >= 0.0 and observation.max() <= 1.0
    assert observation.is_contiguous()


def test_the_same_seed_and_actions_give_the_same_frames() -> None:
    first, second = (SimEnvironment(SimWorld(width=32, height=32, seed=7)) for _ in range(2))
    for action in random_actions(60):
        assert torch.equal(first.observe()["image"], second.observe()["image"])
        first.affect(action)
        second.affect(action)
    assert first.pose == second.pose
    other = SimEnvironment(SimWorld(width=32, height=32, seed=8))
    assert not torch.equal(
        other.observe()["image"], SimEnvironment(SimWorld(32, 32, seed=7)).observe()["image"]
    )


@pytest.mark.parametrize(
    ("action", "dx", "dy", "turn"),
    [
        ([1, 0, 0, 0, 0], 0.12, 0.0, 0.0),  # forward, facing east (+x)
        ([2, 0, 0, 0, 0], -0.12, 0.0, 0.0),  # backward
        ([0, 1, 0, 0, 0], 0.0, 0.12, 0.0),  # strafe right: south (+y) when facing east
        ([0, 2, 0, 0, 0], 0.0, -0.12, 0.0),  # strafe left
        ([0, 0, 1, 0, 0], 0.0, 0.0, 12.0),  # turn right
        ([0, 0, 2, 0, 0], 0.0, 0.0, -12.0),  # turn left
        ([1, 0, 0, 0, 1], 0.24, 0.0, 0.0),  # run doubles the speed
        ([0, 0, 0, 0, 1], 0.0, 0.0, 0.0),  # run alone does not move
    ],
)
def test_each_action_moves_the_agent_as_documented(
    action: list[int], dx: float, dy: float, turn: float
) -> None:
    env = still_env()
    before = env.observe()["image"]
    env.affect(torch.tensor(action))
    x, y, heading = env.pose
    assert x == pytest.approx(MIDDLE_OF_A[0] + dx)
    assert y == pytest.approx(MIDDLE_OF_A[1] + dy)
    assert heading == pytest.approx(turn % 360.0)
    assert torch.equal(env.observe()["image"], before) == (dx == dy == turn == 0.0)


def test_jump_is_a_short_hop_on_a_press() -> None:
    env = still_env()
    start = env.observe()["image"]
    heights, frames = [], []
    for _ in range(8):
        env.affect(torch.tensor([0, 0, 0, 1, 0]))  # held: one hop, as in VRChat
        heights.append(env.world.eye_height)
        frames.append(env.observe()["image"])
    assert max(heights) > EYE_HEIGHT + 0.1
    assert heights[-1] == EYE_HEIGHT and env.pose[:2] == MIDDLE_OF_A
    assert not torch.equal(frames[1], start) and torch.equal(frames[-1], start)
    env.affect(NOOP)
    env.affect(torch.tensor([0, 0, 0, 1, 0]))  # released, pressed again: another hop
    assert env.world.eye_height > EYE_HEIGHT


def test_walls_block_movement_and_the_body_stays_out_of_them() -> None:
    env = still_env(1.5, 1.5, heading=180.0)  # room a's north-west corner, facing west
    for _ in range(10):
        env.affect(torch.tensor([1, 0, 0, 0, 1]))
    assert env.pose.x == pytest.approx(1.5 - 0.24)  # one run step fits, the next would not
    assert env.pose.x - BODY_RADIUS >= 1.0
    world = SimWorld(width=16, height=16, seed=3)
    for action in random_actions(400, seed=1):
        world.step(Inputs(*[(0.0, 1.0, -1.0)[int(a)] for a in action[:3]]))
        assert not world.grid.blocked(np.array(world.pose.x), np.array(world.pose.y), BODY_RADIUS)


def test_walking_into_a_wall_at_an_angle_slides_along_it() -> None:
    env = still_env(1.5, 3.5, heading=180.0 + 30.0)  # west wall ahead-left
    for _ in range(10):
        env.affect(torch.tensor([1, 0, 0, 0, 0]))
    assert env.pose.x == pytest.approx(1.0 + BODY_RADIUS, abs=0.12)
    assert env.pose.y < 3.5 - 0.5


def test_moving_objects_move_by_themselves() -> None:
    env = SimEnvironment(SimWorld(width=16, height=16, seed=0, movers=4))
    start = env.world.movers.positions.copy()
    for _ in range(20):
        env.affect(NOOP)
    moved = np.hypot(*(env.world.movers.positions - start).T)
    assert (moved > 0.3).all()
    assert not env.world.grid.blocked(*env.world.movers.positions.T, env.world.movers.radius).any()


def test_sprites_are_drawn_in_front_of_walls_and_hidden_behind_them() -> None:
    renderer = Raycaster(GridMap(), 32, 32, 70.0)

    def box_at(x: float) -> Sprites:
        return Sprites(
            positions=np.array([[x, 2.5]]),
            radius=np.array([0.3]),
            lift=np.array([EYE_HEIGHT]),
            colours=np.array([[1.0, 1.0, 1.0]], dtype=np.float32),
            round=np.array([False]),
        )

    # From (4.5, 2.5) in room a, facing east: a box 2 cells ahead, then one behind the
    # east wall (x = 8), in room b.
    empty = renderer.render(4.5, 2.5, 0.0, EYE_HEIGHT)
    visible = renderer.render(4.5, 2.5, 0.0, EYE_HEIGHT, box_at(6.5))
    assert (visible[16, 16] > 200).all() and not (empty[16, 16] > 200).all()
    assert np.array_equal(renderer.render(4.5, 2.5, 0.0, EYE_HEIGHT, box_at(11.5)), empty)
    facing_away = renderer.render(4.5, 2.5, math.pi, EYE_HEIGHT)
    assert np.array_equal(renderer.render(4.5, 2.5, math.pi, EYE_HEIGHT, box_at(6.5)), facing_away)


def test_rooms_look_different() -> None:
    # The middles of rooms a and d, both looking at their south wall.
    env = still_env(4.5, 3.5, heading=90.0)
    room_a = env.observe()["image"]
    env.world.place(4.5, 12.5, 90.0)
    room_d = env.observe()["image"]
    assert (room_a.mean(dim=(1, 2)) - room_d.mean(dim=(1, 2))).abs().max() > 0.1


def test_metrics_expose_the_true_pose_and_cells_visited() -> None:
    assert SimWorld(seed=5).cells_visited == 1  # the start cell
    env = still_env(1.5, 1.5, heading=0.0)
    before = env.cells_visited
    for _ in range(25):  # 3 cells east
        env.affect(torch.tensor([1, 0, 0, 0, 0]))
    metrics = env.metrics()
    assert set(metrics) == {
        *("x", "y", "heading", "cells_visited", "cells_total"),
        *("screen_in_view", "screen_steps", "channel_switches"),  # 0 without the noisy TV
    }
    assert metrics["screen_in_view"] == metrics["screen_steps"] == 0.0
    assert metrics["x"] == pytest.approx(1.5 + 25 * 0.12)
    assert metrics["y"] == 1.5 and metrics["heading"] == 0.0
    assert metrics["cells_visited"] == env.cells_visited == before + 3
    assert metrics["cells_total"] == 302.0  # the built-in map's floor cells


def test_bad_actions_are_rejected() -> None:
    env = still_env()
    with pytest.raises(ValueError, match="move_horizontal"):
        env.affect(torch.tensor([0, 3, 0, 0, 0]))
    with pytest.raises(ValueError, match=r"shape \(5,\)"):
        env.affect(torch.tensor([0, 0, 0]))
    assert env.pose == (*MIDDLE_OF_A, 0.0)


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"width": 2}, "interaction.width"),
        ({"move_speed": 0.4}, "move_speed"),
        ({"run_multiplier": 0.5}, "run_multiplier"),
        ({"turn_speed": 0.0}, "turn_speed"),
        ({"field_of_view": 200.0}, "field_of_view"),
        ({"movers": 1000}, "movers"),
        ({"seed": 1.5}, "seed"),
        ({"noisy_tv": "false"}, "interaction.world.noisy_tv"),
        ({"layout": ["###", "#a.", "###"]}, "unknown cells"),
        ({"layout": ["#a#", "#a#", "###"]}, "border"),
    ],
)
def test_bad_config_values_are_rejected(kwargs: dict[str, object], words: str) -> None:
    with pytest.raises(ValueError, match=words):
        SimWorld(**kwargs)  # type: ignore[arg-type]


def test_placing_into_a_wall_is_refused() -> None:
    with pytest.raises(ValueError, match="wall"):
        SimWorld(movers=0).place(0.5, 0.5, 0.0)
