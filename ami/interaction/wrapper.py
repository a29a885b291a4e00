"""Base for environment wrappers: change or record what passes between agent and world."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from typing_extensions import override

from ami.interaction.environment import Environment, Feedback
from ami.interaction.spaces import ActionSpace, Box, Observation


class EnvironmentWrapper(Environment):
    """Delegates everything to the wrapped environment; subclasses override what they change."""

    def __init__(self, environment: Environment) -> None:
        self.environment = environment
        self.action_choices = environment.action_choices
        self.time_scalable = environment.time_scalable
        self.resumes_episodes = environment.resumes_episodes

    @override
    def setup(self) -> None:
        self.environment.setup()

    @override
    def teardown(self) -> None:
        self.environment.teardown()

    @override
    def observation_space(self) -> Mapping[str, Box]:
        return self.environment.observation_space()

    @override
    def action_space(self) -> ActionSpace | None:
        return self.environment.action_space()

    @override
    def observe(self) -> Observation:
        return self.environment.observe()

    @override
    def affect(self, action: torch.Tensor) -> None:
        self.environment.affect(action)

    @override
    def feedback(self) -> Feedback:
        return self.environment.feedback()

    @override
    def broke_continuity(self) -> bool:
        return self.environment.broke_continuity()

    @override
    def on_pause(self) -> None:
        self.environment.on_pause()

    @override
    def on_resume(self) -> None:
        self.environment.on_resume()

    @override
    def state_dict(self) -> dict[str, Any]:
        return self.environment.state_dict()

    @override
    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.environment.load_state_dict(state)

    @override
    def metrics(self) -> Mapping[str, float]:
        return self.environment.metrics()

    @override
    def truth(self) -> Mapping[str, torch.Tensor]:
        return self.environment.truth()

    @override
    def images(self) -> Mapping[str, torch.Tensor]:
        return self.environment.images()
