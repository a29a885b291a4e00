"""The simulated world behind a real OSC wire: VRChat's input path, with no VRChat.

The agent's actions go through the same :class:`OscActuator` as in a VRChat run, over
loopback UDP, into the world's :class:`OscInputServer`. A run exercises message
encoding, addresses, pause and teardown resets exactly as VRChat would receive them.
"""

from __future__ import annotations

import torch
from typing_extensions import override

from ami.interaction.io.actions import check_speed
from ami.interaction.io.osc_actuator import OscActuator, check_port
from ami.interaction.spaces import Observation
from ami.interaction.worlds.sim.environment import SimEnvironment
from ami.interaction.worlds.sim.osc_server import OscInputServer
from ami.interaction.worlds.sim.world import SimWorld


class SimOscEnvironment(SimEnvironment):
    """A :class:`SimWorld` that takes its inputs from OSC messages on loopback.

    Ordering: :meth:`affect` only sends. The next :meth:`observe` waits (at most
    ``sync_timeout``) until the world has received every message sent so far, then
    steps the world once with the inputs held and renders; so the frame of step
    ``t + 1`` always shows the action of step ``t``, as in the direct sim.

    Args:
        world: The world to drive.
        osc_host: Loopback address the world listens on.
        osc_port: Port it listens on; 0 picks a free one at setup, handed to the actuator.
        vertical_speed: Passed to :class:`OscActuator`.
        horizontal_speed: Passed to :class:`OscActuator`.
        look_speed: Passed to :class:`OscActuator`.
        sync_timeout: Seconds to wait for the messages of one step before failing.
    """

    time_scalable = False  # it stands in for VRChat, whose OSC path runs on real time

    def __init__(
        self,
        world: SimWorld,
        osc_host: str = "127.0.0.1",
        osc_port: int = 0,
        vertical_speed: float = 1.0,
        horizontal_speed: float = 1.0,
        look_speed: float = 1.0,
        sync_timeout: float = 1.0,
    ) -> None:
        super().__init__(world)
        if sync_timeout <= 0:
            raise ValueError(f"sync_timeout must be > 0 seconds, got {sync_timeout}")
        self.server = OscInputServer(osc_host, check_port(osc_port, allow_zero=True))
        self._speeds = (
            check_speed("vertical_speed", vertical_speed),
            check_speed("horizontal_speed", horizontal_speed),
            check_speed("look_speed", look_speed),
        )
        self.actuator: OscActuator | None = None
        self.sync_timeout = sync_timeout
        self._acted = False

    @override
    def setup(self) -> None:
        self.server.open()
        self.actuator = OscActuator(self.server.host, self.server.port, *self._speeds)
        self.actuator.setup()

    @override
    def teardown(self) -> None:
        try:
            if self.actuator is not None:
                self.actuator.teardown()
        finally:
            self.server.close()

    @override
    def observe(self) -> Observation:
        if self._acted:
            self.server.wait_for(self._actuator().messages_sent, self.sync_timeout)
            self.world.step(self.server.inputs)
            self._acted = False
        return super().observe()

    @override
    def affect(self, action: torch.Tensor) -> None:
        self._actuator().operate(action)
        self._acted = True

    @override
    def on_pause(self) -> None:
        self._actuator().on_pause()

    @override
    def on_resume(self) -> None:
        self._actuator().on_resume()

    def _actuator(self) -> OscActuator:
        if self.actuator is None:
            raise RuntimeError("SimOscEnvironment used before setup()")
        return self.actuator
