"""Worlds an agent can live in: the built-in simulation, VRChat, recorded videos, Gymnasium.

Each is an :class:`~ami.interaction.environment.Environment` selected by the
``interaction`` config group (``sim``, ``sim_osc``, ``vrchat``, ``video``, ``gym``).
Importing this package never imports Gymnasium (an optional extra).
"""

from ami.interaction.worlds.gym import GymEnvironment
from ami.interaction.worlds.sensor_actuator import SensorActuatorEnvironment
from ami.interaction.worlds.sim import SimEnvironment, SimOscEnvironment, SimWorld

__all__ = [
    "GymEnvironment",
    "SensorActuatorEnvironment",
    "SimEnvironment",
    "SimOscEnvironment",
    "SimWorld",
]
