"""Agents: how actions are chosen (and what each step records for training)."""

from ami.interaction.agents.curiosity import CuriosityAgent
from ami.interaction.agents.random_agent import RandomAgent

__all__ = ["CuriosityAgent", "RandomAgent"]
