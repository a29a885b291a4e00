"""The simulated world's OSC input port: VRChat's ``/input/*`` addresses, without a thread.

The runtime has exactly three threads, so nothing may sit blocked in ``recv``. The
socket is non-blocking and read on the inference thread when the world needs the inputs
(:meth:`OscInputServer.wait_for`), which also knows how many messages to expect: UDP
on loopback is fast but not instantaneous, and a step must see the action sent before
it, not the one before that.
"""

from __future__ import annotations

import logging
import select
import socket
import time
from typing import Final

from pythonosc.osc_packet import OscPacket, ParseError

from ami.interaction.io.actions import OSC_ADDRESSES, Inputs

logger = logging.getLogger(__name__)

_RECEIVE_BUFFER: Final = 1 << 20
"""Bytes; the default buffer drops part of a burst (e.g. many steps' messages at once)."""
_MAX_DATAGRAM: Final = 65536


class OscInputServer:
    """A loopback UDP socket that keeps the latest value of each VRChat input.

    Args:
        host: Address to bind.
        port: Port to bind; 0 lets the system pick a free one (see :attr:`port`), so that
            two runs never collide.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.requested_port = port
        self.inputs = Inputs()
        """The latest value received at each address ("nothing held" before any)."""
        self.received = 0
        """``/input/*`` messages received so far."""
        self._socket: socket.socket | None = None

    @property
    def port(self) -> int:
        """The bound port (the one picked by the system when 0 was asked)."""
        port: int = self._open_socket().getsockname()[1]
        return port

    def open(self) -> None:
        """Bind the socket; fails naming the address if it is taken."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _RECEIVE_BUFFER)
            sock.bind((self.host, self.requested_port))
        except OSError as error:
            sock.close()
            raise OSError(
                f"cannot bind the simulated world's OSC port {self.host}:{self.requested_port}"
                f" ({error}); set interaction.osc_port=0 to pick a free one"
            ) from error
        sock.setblocking(False)
        self._socket = sock

    def close(self) -> None:
        """Release the port."""
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    def drain(self) -> None:
        """Apply every datagram waiting in the socket, without blocking."""
        sock = self._open_socket()
        while True:
            try:
                datagram = sock.recv(_MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                return
            self._apply(datagram)

    def wait_for(self, count: int, timeout: float) -> None:
        """Drain until :attr:`received` reaches ``count`` messages, for at most ``timeout`` s.

        Raises:
            TimeoutError: The messages did not arrive (lost, or sent elsewhere).
        """
        deadline = time.monotonic() + timeout
        self.drain()
        while self.received < count:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(
                    f"simulated world on {self.host}:{self.port} received {self.received} of "
                    f"{count} OSC messages within {timeout} s"
                )
            select.select([self._open_socket()], [], [], remaining)
            self.drain()

    def _open_socket(self) -> socket.socket:
        if self._socket is None:
            raise RuntimeError("OscInputServer is not open (call open() first)")
        return self._socket

    def _apply(self, datagram: bytes) -> None:
        try:
            messages = OscPacket(datagram).messages
        except ParseError as error:
            logger.warning("ignoring a datagram that is not OSC: %s", error)
            return
        for timed in messages:
            message = timed.message
            if message.address not in OSC_ADDRESSES or len(message.params) != 1:
                logger.warning("ignoring OSC %s %r", message.address, message.params)
                continue
            self.inputs = self.inputs.with_osc(message.address, message.params[0])
            self.received += 1
