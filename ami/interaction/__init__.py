"""The agent's side of the world: environments, agents, sensors, actuators, wrappers.

Everything here runs on the inference thread.
"""

from ami.interaction.agent import Agent
from ami.interaction.environment import Environment, WorldEnded
from ami.interaction.interaction import Interaction

__all__ = ["Agent", "Environment", "Interaction", "WorldEnded"]
