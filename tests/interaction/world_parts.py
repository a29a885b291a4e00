"""Real parts for the world tests: an OSC server on loopback, videos written by OpenCV."""

from __future__ import annotations

import socket
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import torch
from pythonosc.dispatcher import Dispatcher
from pythonosc.osc_server import BlockingOSCUDPServer

from ami.interaction.io.actions import ACTION_CHOICES


class OscRecorder:
    """A python-osc UDP server on 127.0.0.1 (ephemeral port), read on the test's thread."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, tuple[object, ...]]] = []
        dispatcher = Dispatcher()
        dispatcher.set_default_handler(self._record)
        self.server = BlockingOSCUDPServer(("127.0.0.1", 0), dispatcher, bind_and_activate=False)
        # The default buffer drops part of a burst of hundreds of messages.
        self.server.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        self.server.server_bind()
        self.server.server_activate()
        self.server.timeout = 2.0
        self.port: int = self.server.server_address[1]

    def _record(self, address: str, *args: object) -> None:
        self.messages.append((address, args))

    def receive(self, count: int) -> list[tuple[str, tuple[object, ...]]]:
        """The next ``count`` messages (fails if they do not come within the timeout)."""
        start = len(self.messages)
        while len(self.messages) < start + count:
            before = len(self.messages)
            self.server.handle_request()
            assert len(self.messages) > before, f"got {len(self.messages) - start} of {count}"
        return self.messages[start:]

    def assert_silent(self) -> None:
        """Nothing more arrives within a short wait."""
        self.server.timeout = 0.05
        before = len(self.messages)
        self.server.handle_request()
        assert len(self.messages) == before, self.messages[before:]


def write_video(path: Path, frames: Sequence[np.ndarray], codec: str = "FFV1") -> Path:
    """Write BGR ``uint8`` frames losslessly (FFV1) so tests can compare exact colours."""
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*codec), 10.0, (width, height))
    assert writer.isOpened(), f"this OpenCV cannot write {codec} to {path}"
    for frame in frames:
        writer.write(frame)
    writer.release()
    return path


def solid(width: int, height: int, bgr: tuple[int, int, int]) -> np.ndarray:
    """A frame of one colour."""
    return np.full((height, width, 3), bgr, dtype=np.uint8)


def random_actions(count: int, seed: int = 0) -> list[torch.Tensor]:
    """Uniform random actions of the standard layout, the same for the same seed."""
    generator = torch.Generator().manual_seed(seed)
    return [
        torch.stack([torch.randint(0, n, (), generator=generator) for n in ACTION_CHOICES])
        for _ in range(count)
    ]
