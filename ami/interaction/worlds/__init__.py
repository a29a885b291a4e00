"""Worlds an agent can live in: the built-in simulation, VRChat, recorded videos.

Each is an :class:`~ami.interaction.environment.Environment` selected by the
``interaction`` config group (``sim``, ``sim_osc``, ``vrchat``, ``video``).
"""

from ami.interaction.worlds.sensor_actuator import SensorActuatorEnvironment
from ami.interaction.worlds.sim import SimEnvironment, SimOscEnvironment, SimWorld

__all__ = ["SensorActuatorEnvironment", "SimEnvironment", "SimOscEnvironment", "SimWorld"]
