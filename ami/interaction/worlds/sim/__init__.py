"""A first-person grid world rendered in-process: rooms, walls, moving objects.

Example:
    >>> env = SimEnvironment(SimWorld(width=84, height=84, seed=0))
    >>> env.observe().shape
    torch.Size([3, 84, 84])
"""

from ami.interaction.worlds.sim.environment import SimEnvironment
from ami.interaction.worlds.sim.osc_environment import SimOscEnvironment
from ami.interaction.worlds.sim.world import Pose, SimWorld

__all__ = ["Pose", "SimEnvironment", "SimOscEnvironment", "SimWorld"]
