"""The world's privileged side: its true state for probes, its coverage map and numbers."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pytest
import torch

from ami.checkpoints.file_format import read, write_file
from ami.interaction.environment import Environment
from ami.interaction.spaces import Box, Observation, image_space
from ami.interaction.worlds.sim import SimEnvironment, SimOscEnvironment, SimWorld
from ami.interaction.worlds.sim.coverage import AGENT, FLOOR, SCREEN, WALL, coverage_map
from ami.interaction.worlds.sim.grid_map import DEFAULT_LAYOUT
from ami.interaction.wrapper import EnvironmentWrapper
from ami.interaction.wrappers import RecordingWrapper
from ami.state import snapshot
from tests.interaction.world_parts import random_actions

SCALE = 8
EAST = torch.tensor([1, 0, 0, 0, 0])
# Room "a" spans cells x 1..7, y 1..6 of the 24 x 18 built-in map; row 2 ends in wall.
WEST_OF_A = (1.5, 2.5)


def still(noisy_tv: bool = False, seed: int = 0) -> SimEnvironment:
    """A world without movers, so that only the agent changes it."""
    return SimEnvironment(SimWorld(width=32, height=32, seed=seed, movers=0, noisy_tv=noisy_tv))


def cell_pixels(image: np.ndarray, x: int, y: int) -> np.ndarray:
    """``(SCALE * SCALE, 3)``: the pixels of cell ``(x, y)``."""
    return image[y * SCALE : (y + 1) * SCALE, x * SCALE : (x + 1) * SCALE].reshape(-1, 3)


def as_hwc(picture: torch.Tensor) -> np.ndarray:
    """An ``images()`` picture back as ``uint8`` ``(H, W, 3)``."""
    return np.asarray(picture.mul(255).round().byte().permute(1, 2, 0).numpy())


class Nothing(Environment):
    """A world that knows nothing about itself (the real world, a recording)."""

    def observation_space(self) -> Mapping[str, Box]:
        return image_space(4, 4)

    def observe(self) -> Observation:
        return {"image": torch.zeros(3, 4, 4)}

    def affect(self, action: torch.Tensor) -> None:
        pass


@pytest.mark.parametrize(
    ("x", "y", "heading"), [(4.5, 3.5, 0.0), (4.5, 3.5, 90.0), (10.25, 12.75, 210.0)]
)
def test_truth_is_the_placed_pose_as_map_fractions_and_a_heading_on_the_circle(
    x: float, y: float, heading: float
) -> None:
    env = still()
    env.world.place(x, y, heading)
    pose = env.truth()["pose"]
    assert set(env.truth()) == {"pose"}
    assert pose.shape == (4,) and pose.dtype == torch.float32
    expected = [x / 24, y / 18, math.cos(math.radians(heading)), math.sin(math.radians(heading))]
    assert pose.tolist() == pytest.approx(expected, abs=1e-6)


def test_truth_follows_the_agent_each_step_and_stays_in_range() -> None:
    env = SimEnvironment(SimWorld(width=32, height=32, seed=3))
    for action in random_actions(150, seed=5):
        env.observe()
        pose = env.truth()["pose"]
        x, y, heading = env.pose
        assert pose[:2].tolist() == pytest.approx([x / 24, y / 18], abs=1e-6)
        assert 0.0 < pose[0] < 1.0 and 0.0 < pose[1] < 1.0
        assert float(pose[2] ** 2 + pose[3] ** 2) == pytest.approx(1.0, abs=1e-5)
        angle = math.degrees(math.atan2(float(pose[3]), float(pose[2])))
        assert abs((angle - heading + 180) % 360 - 180) < 1e-3
        env.affect(action)


def test_the_osc_sim_tells_the_truth_of_the_frame_it_just_observed() -> None:
    direct = SimEnvironment(SimWorld(width=32, height=32, seed=4))
    wired = SimOscEnvironment(SimWorld(width=32, height=32, seed=4))
    wired.setup()
    try:
        for action in random_actions(30, seed=2):
            wired.observe()  # steps the world with the last action's inputs
            direct.observe()
            assert torch.equal(wired.truth()["pose"], direct.truth()["pose"])
            direct.affect(action)
            wired.affect(action)
        assert wired.images()["coverage"].shape == direct.images()["coverage"].shape
    finally:
        wired.teardown()


def test_a_world_that_knows_nothing_of_itself_says_so() -> None:
    assert Nothing().truth() == {} and Nothing().images() == {}
    assert EnvironmentWrapper(Nothing()).truth() == {}


def test_wrappers_forward_truth_and_images(tmp_path: Path) -> None:
    inner = still(noisy_tv=True)
    inner.world.place(5.5, 2.5, 45.0)
    for env in (EnvironmentWrapper(inner), RecordingWrapper(inner, tmp_path)):
        assert torch.equal(env.truth()["pose"], inner.truth()["pose"])
        assert env.images().keys() == {"coverage"}
        assert torch.equal(env.images()["coverage"], inner.images()["coverage"])


def test_the_coverage_map_is_an_rgb_picture_of_the_grid_at_eight_pixels_a_cell() -> None:
    picture = still().images()["coverage"]
    assert picture.shape == (3, 18 * SCALE, 24 * SCALE) and picture.dtype == torch.float32
    assert picture.min() >= 0.0 and picture.max() <= 1.0
    image = as_hwc(picture)
    assert (cell_pixels(image, 0, 0) == WALL).all()
    assert (cell_pixels(image, 20, 15) == FLOOR).all()  # room f, never entered


def test_a_large_map_gets_fewer_pixels_a_cell_and_a_bad_scale_is_refused() -> None:
    row = "#" + "a" * 198 + "#"
    wide = SimWorld(width=16, height=16, movers=0, layout=["#" * 200, row, row, "#" * 200])
    assert coverage_map(wide).shape == (4 * 2, 200 * 2, 3)  # 512 // 200 = 2 pixels a cell
    assert coverage_map(wide, scale=1).shape == (4, 200, 3)
    for bad in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match="scale must be an integer >= 1"):
            coverage_map(wide, scale=bad)  # type: ignore[arg-type]


def test_visited_cells_are_coloured_from_blue_to_yellow_in_the_order_of_first_visit() -> None:
    env = still()
    env.world.place(*WEST_OF_A, 0.0)
    for _ in range(60):  # along row 2 from x 1 to x 7, the room's east wall
        env.affect(EAST)
    env.world.place(4.5, 5.5, 90.0)  # leave the row, so no dot covers its cells
    image = as_hwc(env.images()["coverage"])
    colours = [cell_pixels(image, x, 2) for x in range(1, 8)]
    for colour in colours:
        assert (colour == colour[0]).all(), "one flat colour a cell"
        assert not (colour[0] == FLOOR).all() and not (colour[0] == WALL).all()
    first, last = colours[0][0].astype(int), colours[-1][0].astype(int)
    assert first[2] > first[0] and last[0] > last[2], "blue first, yellow last"
    greens = [int(colour[0][1]) for colour in colours]  # viridis brightens throughout
    assert greens == sorted(greens) and len(set(greens)) == len(greens), "later: yellower"
    assert (cell_pixels(image, 4, 1) == FLOOR).all(), "the row above was never entered"


def test_the_noisy_tv_is_marked_red_on_its_wall() -> None:
    image = as_hwc(still(noisy_tv=True).images()["coverage"])
    for x in (11, 12, 13):
        assert (cell_pixels(image, x, 0) == SCREEN).all()
    assert (cell_pixels(image, 10, 0) == WALL).all()
    assert not (as_hwc(still().images()["coverage"]) == SCREEN).all(axis=2).any()


@pytest.mark.parametrize(("x", "y"), [(4.5, 3.5), (13.3, 12.6)])
def test_the_agent_is_a_white_dot_where_it_stands_with_a_line_along_its_heading(
    x: float, y: float
) -> None:
    env = still()
    env.world.place(x, y, 0.0)  # facing east
    image = as_hwc(env.images()["coverage"])
    white = (image == AGENT).all(axis=2)
    column, row = int(x * SCALE), int(y * SCALE)
    assert white[row, column]
    assert white[row, column + SCALE // 2], "the heading line, east of the dot"
    assert not white[row, column - SCALE // 2], "nothing west of it"
    rows, columns = np.nonzero(white)
    assert abs(rows.mean() - row) <= 1 and columns.min() >= column - SCALE // 4
    assert columns.max() <= column + SCALE


def test_the_order_of_first_visits_survives_a_checkpoint(tmp_path: Path) -> None:
    original = SimEnvironment(SimWorld(width=32, height=32, seed=2, movers=2))
    for action in random_actions(300, seed=1):
        original.affect(action)
    assert original.cells_visited > 5
    write_file(tmp_path / "world.ckpt", snapshot(original.state_dict()))
    copy = SimEnvironment(SimWorld(width=32, height=32, seed=2, movers=2))
    copy.load_state_dict(read(tmp_path / "world.ckpt"))
    assert np.array_equal(copy.world.first_visits, original.world.first_visits)
    assert torch.equal(copy.images()["coverage"], original.images()["coverage"])
    steps = original.world.first_visits
    assert len(np.unique(steps[steps >= 0])) > 5, "the order is more than one step"


def test_an_old_state_without_the_order_loads_with_its_cells_in_the_oldest_colour() -> None:
    env = still()
    env.world.place(*WEST_OF_A, 0.0)
    for _ in range(30):
        env.affect(EAST)
    old = {key: value for key, value in env.state_dict().items() if key != "first_visit"}
    restored = still()
    restored.load_state_dict(old)
    assert restored.cells_visited == env.cells_visited
    steps = restored.world.first_visits
    assert set(steps[steps >= 0].tolist()) == {0}
    restored.world.place(4.5, 5.5, 90.0)
    for _ in range(20):  # new cells from here on: the ramp runs from the old ones
        restored.affect(EAST)
    image = as_hwc(restored.images()["coverage"])
    old_cells = [x for x in range(1, 8) if steps[2, x] == 0]
    assert len(old_cells) >= 3
    oldest = cell_pixels(image, old_cells[0], 2)[0]
    assert all((cell_pixels(image, x, 2) == oldest).all() for x in old_cells)
    assert not (cell_pixels(image, 6, 5) == oldest).any(axis=1).all(), "newer cells differ"


def test_a_saved_order_that_does_not_fit_the_cells_is_refused() -> None:
    state = still().state_dict()
    state["first_visit"] = [0, 1, 2]
    with pytest.raises(ValueError, match="first_visit has 3 steps for 1 visited cells"):
        still().load_state_dict(state)


def test_cells_total_counts_the_floor_and_bounds_cells_visited_on_a_random_walk() -> None:
    env = SimEnvironment(SimWorld(width=32, height=32, seed=6))
    floor = int((~env.world.grid.wall).sum())
    assert floor == sum(row.count(c) for row in DEFAULT_LAYOUT for c in "abcdef") == 302
    for action in random_actions(2000, seed=3):
        env.affect(action)
        metrics = env.metrics()
        assert metrics["cells_total"] == float(floor)
        assert metrics["cells_visited"] <= metrics["cells_total"]
    assert metrics["cells_visited"] > 10
    small = SimWorld(width=16, height=16, movers=0, layout=["#####", "#aab#", "#####"])
    assert small.metrics()["cells_total"] == 3.0
