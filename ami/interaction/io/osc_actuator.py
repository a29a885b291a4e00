"""VRChat's OSC input API as an actuator: the agent's action held as controller inputs.

Every :meth:`OscActuator.operate` sends all five inputs, not only the ones that changed:
UDP may lose a datagram and VRChat keeps the last value it received, so repeating the
whole state heals a lost message within one step. Repeating a pressed button is safe:
VRChat presses again only after it has seen a release.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import torch
from pythonosc.udp_client import SimpleUDPClient
from typing_extensions import override

from ami.interaction.io.actions import Inputs, check_speed, inputs_from_action
from ami.interaction.io.actuator import Actuator

logger = logging.getLogger(__name__)

_NEUTRAL = dict(Inputs().to_osc())
"""Each address's "released" value: 0.0 for axes, 0 for buttons."""


def check_port(port: int, allow_zero: bool = False) -> int:
    """Validate a UDP port from the config (``interaction.osc_port``)."""
    low = 0 if allow_zero else 1
    if not isinstance(port, int) or isinstance(port, bool) or not low <= port <= 65535:
        raise ValueError(f"interaction.osc_port must be an integer in {low}..65535, got {port!r}")
    return port


class OscActuator(Actuator):
    """Holds the agent's action as VRChat inputs, sent over OSC/UDP.

    Args:
        host: Where VRChat listens for OSC (``127.0.0.1`` when it runs on this machine).
        port: VRChat's OSC input port: 9000 unless VRChat was started with ``--osc=``.
        vertical_speed: Axis value sent for "forward" (negated for "backward").
        horizontal_speed: Axis value sent for "right" (negated for "left").
        look_speed: Axis value sent for "turn right" (negated for "turn left"); below 1
            turns more slowly on desktop, where VRChat turns smoothly.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 9000,
        vertical_speed: float = 1.0,
        horizontal_speed: float = 1.0,
        look_speed: float = 1.0,
    ) -> None:
        self.host = host
        self.port = check_port(port)
        self.vertical_speed = check_speed("vertical_speed", vertical_speed)
        self.horizontal_speed = check_speed("horizontal_speed", horizontal_speed)
        self.look_speed = check_speed("look_speed", look_speed)
        self._client: SimpleUDPClient | None = None
        self._held = Inputs()
        self._touched: set[str] = set()
        self.messages_sent = 0
        """Messages sent successfully so far (a receiver can wait until it has them all)."""

    @override
    def setup(self) -> None:
        try:
            self._client = SimpleUDPClient(self.host, self.port)
        except (OSError, ValueError) as error:
            raise ValueError(
                f"cannot open an OSC client to interaction.osc_host={self.host!r} "
                f"interaction.osc_port={self.port}: {error}. Check the host name."
            ) from error

    @override
    def operate(self, action: torch.Tensor) -> None:
        inputs = inputs_from_action(
            action, self.vertical_speed, self.horizontal_speed, self.look_speed
        )
        self._held = inputs
        self._send(inputs.to_osc())

    @override
    def on_pause(self) -> None:
        self._send(Inputs().to_osc())

    @override
    def on_resume(self) -> None:
        self._send(self._held.to_osc())

    @override
    def teardown(self) -> None:
        if self._client is None:
            return
        try:
            self._send((address, _NEUTRAL[address]) for address in sorted(self._touched))
        finally:
            self._client.close()
            self._client = None

    def _send(self, messages: Iterable[tuple[str, float | int]]) -> None:
        """Send every message even if one fails (a reset must reach every input).

        Raises:
            OSError: The first failure, after all messages were tried and every failure
                was logged with its address.
        """
        if self._client is None:
            raise RuntimeError("OscActuator used before setup() or after teardown()")
        first_error: OSError | None = None
        for address, value in messages:
            try:
                self._client.send_message(address, value)
            except OSError as error:
                logger.error(
                    "OSC send %s %r to %s:%d failed: %s",
                    address,
                    value,
                    self.host,
                    self.port,
                    error,
                )
                first_error = first_error or error
            else:
                self._touched.add(address)
                self.messages_sent += 1
        if first_error is not None:
            raise first_error
