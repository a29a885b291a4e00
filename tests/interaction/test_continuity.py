"""Segments from the world's side: pauses, jumps and video cuts start a new one."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch

from ami.data import StepCollector
from ami.interaction import Environment, Interaction
from ami.interaction.agents import RandomAgent
from ami.interaction.io.video_files import VideoFilesSensor
from ami.interaction.spaces import Box, Observation, image_space
from ami.interaction.worlds import SensorActuatorEnvironment
from ami.interaction.worlds.sim import SimEnvironment, SimWorld

COLOURS = [(0, 0, 255), (0, 255, 0), (255, 0, 0)]


class JumpingWorld(Environment):
    """Constant frames; the observation numbered ``jump_at`` follows a reset."""

    def __init__(self, jump_at: int) -> None:
        self.jump_at = jump_at
        self.steps = 0

    def observation_space(self) -> dict[str, Box]:
        return image_space(4, 4)

    def observe(self) -> Observation:
        self.steps += 1
        return {"image": torch.zeros(3, 4, 4)}

    def broke_continuity(self) -> bool:
        return self.steps == self.jump_at

    def affect(self, action: torch.Tensor) -> None:
        pass


def test_a_pause_and_a_jump_of_the_world_each_start_a_new_segment() -> None:
    collector = StepCollector()
    agent = RandomAgent([3, 3, 3, 2, 2])
    agent.bind(None, collector)  # type: ignore[arg-type]
    interaction = Interaction(JumpingWorld(jump_at=7), agent)
    interaction.setup()
    for _ in range(3):
        interaction.step()
    interaction.on_pause()
    interaction.on_resume()
    for _ in range(5):  # the fourth of these observes the jump
        interaction.step()
    segments = collector.take().segments
    assert len(segments) == 8
    first, second, third = segments[0], segments[3], segments[6]
    assert segments == [first] * 3 + [second] * 3 + [third] * 2
    assert len({first, second, third}) == 3


def test_a_video_cut_to_the_next_file_breaks_continuity_once(
    tmp_path: Path, video_of: Callable[..., Path]
) -> None:
    video_of("a.avi", COLOURS[:2])
    video_of("b.avi", COLOURS[2:])
    env = SensorActuatorEnvironment(VideoFilesSensor(str(tmp_path), width=8, height=8))
    env.setup()
    breaks = []
    for _ in range(5):  # a a b (cut) a (loop: cut) a
        env.observe()
        breaks.append(env.broke_continuity())
    env.teardown()
    assert breaks == [False, False, True, True, False]


def test_placing_the_simulated_agent_elsewhere_is_a_jump() -> None:
    env = SimEnvironment(SimWorld(movers=0))
    env.observe()
    assert not env.broke_continuity()
    x, y = env.world.grid.free_cells[0]
    env.world.place(x + 0.5, y + 0.5, 0.0)
    env.observe()
    assert env.broke_continuity()
    assert not env.broke_continuity(), "reported once"
