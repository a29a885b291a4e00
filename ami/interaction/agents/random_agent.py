"""The baseline agent: uniform random actions, each held for a few steps."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from typing_extensions import override

from ami.interaction.agent import Agent
from ami.interaction.environment import NO_FEEDBACK, Feedback
from ami.interaction.spaces import ActionSpace, Box, MultiDiscrete, Observation


class RandomAgent(Agent):
    """Draws uniform random actions from any action space, each held ``action_repeat`` steps.

    Holding an action for several steps makes motion coherent enough to explore (a
    new random choice every step mostly jitters in place). Each step records the
    observation, the action and, where the world gives them, the reward and episode
    ends: all a world model needs.

    Args:
        action_choices: Number of choices per action category; None takes whatever
            the world declares (:meth:`fit_action_space`), continuous boxes included.
        action_repeat: Steps each sampled action is held.
        seed: Seed of the agent's own generator.
    """

    def __init__(
        self, action_choices: Sequence[int] | None = None, action_repeat: int = 1, seed: int = 0
    ) -> None:
        if action_repeat < 1:
            raise ValueError(f"agent.action_repeat must be >= 1, got {action_repeat}")
        self.space = None
        if action_choices is not None:
            try:
                self.space = MultiDiscrete(tuple(int(count) for count in action_choices))
            except ValueError:
                raise ValueError(
                    f"action_choices must be positive counts, got {list(action_choices)}"
                ) from None
        self.action_repeat = action_repeat
        self._generator = torch.Generator().manual_seed(seed)
        self._action = self._zero_action()
        self._held = 0
        self._record: dict[str, torch.Tensor] | None = None

    @override
    def fit_action_space(self, space: ActionSpace | None) -> None:
        if self.space is None:
            if space is None:
                raise ValueError(
                    "agent.action_choices=null takes the world's action space, but this "
                    "world declares none: set agent.action_choices"
                )
            if isinstance(space, Box) and not (
                math.isfinite(space.low) and math.isfinite(space.high)
            ):
                raise ValueError(f"the random agent draws uniformly, so needs a bounded {space}")
            self.space = space
            self._action = self._zero_action()
        elif space is not None and space != self.space:
            raise ValueError(f"the agent drives {self.space}, but the world takes {space}")

    @property
    def space(self) -> ActionSpace | None:
        """What this agent drives: fixed by ``action_choices`` or taken from the world."""
        return self._space

    @space.setter
    def space(self, space: ActionSpace | None) -> None:
        self._space = space
        # Drawn from on every decision: made once, not per step.
        self._choices = torch.tensor(space.choices if isinstance(space, MultiDiscrete) else [])

    def _zero_action(self) -> torch.Tensor:
        if isinstance(self.space, Box):
            return torch.zeros(self.space.shape, dtype=self.space.dtype)
        size = len(self.space.choices) if self.space is not None else 0
        return torch.zeros(size, dtype=torch.long)

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
    def step(self, observation: Observation) -> torch.Tensor:
        if self.space is None:
            raise RuntimeError("RandomAgent.step before fit_action_space took the world's space")
        if self._held == 0:
            self._action = self._draw(self.space)
        self._held = (self._held + 1) % self.action_repeat
        self._record = {**observation, "action": self._action}
        return self._action

    def _draw(self, space: ActionSpace) -> torch.Tensor:
        if isinstance(space, MultiDiscrete):
            uniform = torch.rand(len(space.choices), generator=self._generator)
            return (uniform * self._choices).long()
        uniform = torch.rand(space.shape, generator=self._generator, dtype=torch.float64)
        return (space.low + uniform * (space.high - space.low)).to(space.dtype)

    @override
    def after_action(self, feedback: Feedback = NO_FEEDBACK) -> None:
        record, self._record = self._record, None
        if record is None:
            return
        if feedback.reward is not None:  # a task: every step has a reward and end flags
            record["reward"] = torch.tensor(feedback.reward, dtype=torch.float32)
            record["terminated"] = torch.tensor(feedback.terminated)
            record["truncated"] = torch.tensor(feedback.truncated)
        self.collector.append(record)
