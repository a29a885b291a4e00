"""A world seen through a sensor and acted on through an actuator (VRChat, videos)."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from typing_extensions import override

from ami.interaction.environment import Environment
from ami.interaction.io.actions import ACTION_CHOICES, validate_action
from ami.interaction.io.actuator import Actuator
from ami.interaction.io.sensor import Sensor
from ami.interaction.spaces import Box, Observation, check_modality_names


class SensorActuatorEnvironment(Environment):
    """Pairs sensors with an actuator, e.g. the OBS camera with VRChat's OSC inputs.

    Args:
        sensor: Where observations come from: one sensor per modality (a camera, a
            microphone), each filling the entry its ``modality`` names.
        actuator: What applies actions; None for a world that cannot be acted on (a
            recorded video): actions are then still checked, and ignored.
    """

    action_choices = ACTION_CHOICES

    def __init__(self, sensor: Sensor | Sequence[Sensor], actuator: Actuator | None = None):
        self.sensors = [sensor] if isinstance(sensor, Sensor) else list(sensor)
        if not self.sensors:
            raise ValueError("interaction.environment.sensor: a world needs at least one sensor")
        modalities = [s.modality for s in self.sensors]
        repeated = sorted({m for m in modalities if modalities.count(m) > 1})
        if repeated:
            raise ValueError(
                f"interaction.environment.sensor: two sensors fill modality {repeated}; "
                "give each its own modality name"
            )
        check_modality_names(modalities, "interaction.environment.sensor")
        self.sensor = self.sensors[0]
        """The first sensor (the camera of a camera world)."""
        self.actuator = actuator
        # Only recordings, with nothing acting on a real world, follow the steps.
        self.time_scalable = actuator is None and all(s.time_scalable for s in self.sensors)

    @override
    def setup(self) -> None:
        with contextlib.ExitStack() as opened:  # a later failure closes what opened
            for sensor in self.sensors:
                sensor.setup()
                opened.callback(sensor.teardown)
            if self.actuator is not None:
                self.actuator.setup()
            opened.pop_all()

    @override
    def teardown(self) -> None:
        """Release the actuator's inputs first (VRChat holds them), then the sensors, always."""
        with contextlib.ExitStack() as stack:
            for sensor in self.sensors:
                stack.callback(sensor.teardown)
            if self.actuator is not None:
                self.actuator.teardown()

    @override
    def observation_space(self) -> dict[str, Box]:
        return {sensor.modality: sensor.space() for sensor in self.sensors}

    @override
    def observe(self) -> Observation:
        return {sensor.modality: sensor.read() for sensor in self.sensors}

    @override
    def affect(self, action: torch.Tensor) -> None:
        if self.actuator is None:
            validate_action(action)
        else:
            self.actuator.operate(action)

    @override
    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"sensor": self.sensor.state_dict()}
        for sensor in self.sensors[1:]:
            state[f"sensor/{sensor.modality}"] = sensor.state_dict()
        return state

    @override
    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.sensor.load_state_dict(state["sensor"])
        for sensor in self.sensors[1:]:
            sensor.load_state_dict(state[f"sensor/{sensor.modality}"])

    @override
    def broke_continuity(self) -> bool:
        broken = [sensor.broke_continuity() for sensor in self.sensors]  # each resets its flag
        return any(broken)

    @override
    def on_pause(self) -> None:
        if self.actuator is not None:
            self.actuator.on_pause()

    @override
    def on_resume(self) -> None:
        if self.actuator is not None:
            self.actuator.on_resume()
