"""The baseline agent: uniform random actions, each held for a few steps."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from typing_extensions import override

from ami.interaction.agent import Agent


class RandomAgent(Agent):
    """Picks each action category uniformly and repeats the choice ``action_repeat`` times.

    Holding an action for several steps makes motion coherent enough to explore (a
    new random choice every step mostly jitters in place). Each step records the
    observation and the action, which is all a world model needs.

    Args:
        action_choices: Number of choices per action category.
        action_repeat: Steps each sampled action is held.
        seed: Seed of the agent's own generator.
    """

    def __init__(
        self, action_choices: Sequence[int], action_repeat: int = 1, seed: int = 0
    ) -> None:
        choices = [int(count) for count in action_choices]
        if not choices or any(count < 1 for count in choices):
            raise ValueError(f"action_choices must be positive counts, got {list(action_choices)}")
        if action_repeat < 1:
            raise ValueError(f"agent.action_repeat must be >= 1, got {action_repeat}")
        self.action_choices = torch.tensor(choices)
        self.action_repeat = action_repeat
        self._generator = torch.Generator().manual_seed(seed)
        self._action = torch.zeros(len(choices), dtype=torch.long)
        self._held = 0

    @override
    def state_dict(self) -> dict[str, Any]:
        return {
            "action": self._action,
            "held": self._held,
            "generator": self._generator.get_state(),
        }

    @override
    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self._action = state["action"].clone()
        self._held = int(state["held"])
        self._generator.set_state(state["generator"])

    @override
    def step(self, observation: torch.Tensor) -> torch.Tensor:
        if self._held == 0:
            uniform = torch.rand(len(self.action_choices), generator=self._generator)
            self._action = (uniform * self.action_choices).long()
        self._held = (self._held + 1) % self.action_repeat
        self.collector.append({"observation": observation, "action": self._action})
        return self._action
