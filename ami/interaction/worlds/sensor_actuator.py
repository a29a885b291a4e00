"""A world seen through a sensor and acted on through an actuator (VRChat, videos)."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any

import torch
from typing_extensions import override

from ami.interaction.environment import Environment
from ami.interaction.io.actions import ACTION_CHOICES, validate_action
from ami.interaction.io.actuator import Actuator
from ami.interaction.io.sensor import Sensor


class SensorActuatorEnvironment(Environment):
    """Pairs a sensor with an actuator, e.g. the OBS camera with VRChat's OSC inputs.

    Args:
        sensor: Where observations come from.
        actuator: What applies actions; None for a world that cannot be acted on (a
            recorded video): actions are then still checked, and ignored.
    """

    action_choices = ACTION_CHOICES

    def __init__(self, sensor: Sensor, actuator: Actuator | None = None) -> None:
        self.sensor = sensor
        self.actuator = actuator

    @override
    def setup(self) -> None:
        self.sensor.setup()
        if self.actuator is not None:
            self.actuator.setup()

    @override
    def teardown(self) -> None:
        """Release the actuator's inputs first (VRChat holds them), then the sensor, always."""
        with contextlib.ExitStack() as stack:
            stack.callback(self.sensor.teardown)
            if self.actuator is not None:
                self.actuator.teardown()

    @override
    def observe(self) -> torch.Tensor:
        return self.sensor.read()

    @override
    def affect(self, action: torch.Tensor) -> None:
        if self.actuator is None:
            validate_action(action)
        else:
            self.actuator.operate(action)

    @override
    def state_dict(self) -> dict[str, Any]:
        return {"sensor": self.sensor.state_dict()}

    @override
    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.sensor.load_state_dict(state["sensor"])

    @override
    def broke_continuity(self) -> bool:
        return self.sensor.broke_continuity()

    @override
    def on_pause(self) -> None:
        if self.actuator is not None:
            self.actuator.on_pause()

    @override
    def on_resume(self) -> None:
        if self.actuator is not None:
            self.actuator.on_resume()
