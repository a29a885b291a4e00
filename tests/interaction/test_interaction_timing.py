"""A step's time split into the world's observation and the agent's own work."""

from __future__ import annotations

import pytest
import torch
from fake_clock import ManualClock

from ami.data import StepCollector
from ami.interaction import Environment, Interaction
from ami.interaction.agents import RandomAgent
from ami.interaction.environment import NO_FEEDBACK, Feedback
from ami.interaction.spaces import Box, Observation, image_space


class SlowWorld(Environment):
    """Observing takes 30 ms of the clock, applying an action 40 ms."""

    def __init__(self, clock: ManualClock) -> None:
        self.clock = clock

    def observation_space(self) -> dict[str, Box]:
        return image_space(4, 4)

    def observe(self) -> Observation:
        self.clock.now += 0.030
        return {"image": torch.zeros(3, 4, 4)}

    def affect(self, action: torch.Tensor) -> None:
        self.clock.now += 0.040


class SlowAgent(RandomAgent):
    """Deciding takes 20 ms of the clock, the work after the action 10 ms."""

    def __init__(self, clock: ManualClock) -> None:
        super().__init__([3, 3, 3, 2, 2])
        self.clock = clock

    def step(self, observation: Observation) -> torch.Tensor:
        self.clock.now += 0.020
        return super().step(observation)

    def after_action(self, feedback: Feedback = NO_FEEDBACK) -> None:
        self.clock.now += 0.010
        super().after_action(feedback)


def test_the_agents_share_excludes_observing_and_acting_on_the_world(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = ManualClock()
    monkeypatch.setattr("ami.interaction.interaction.time.perf_counter", clock)
    agent = SlowAgent(clock)
    agent.bind(None, StepCollector())  # type: ignore[arg-type]
    interaction = Interaction(SlowWorld(clock), agent)
    interaction.setup()
    started = clock.now

    interaction.step()

    assert interaction.observe_seconds == pytest.approx(0.030)
    assert interaction.agent_seconds == pytest.approx(0.020 + 0.010)
    assert interaction.acted_at - started == pytest.approx(0.030 + 0.020 + 0.040)
