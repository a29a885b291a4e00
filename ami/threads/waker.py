"""Wake the main thread out of ``select()`` from another thread."""

from __future__ import annotations

import contextlib
import socket


class Waker:
    """A socket pair: writing a byte makes the read end selectable.

    The main thread blocks in ``select()`` on the web API's socket; a background
    thread that fails or finishes must interrupt that wait at once, and a socket is
    the one thing both can share with ``select()``.
    """

    def __init__(self) -> None:
        self._reader, self._writer = socket.socketpair()
        self._reader.setblocking(False)
        self._writer.setblocking(False)

    def fileno(self) -> int:
        """The read end, for ``select()``."""
        return self._reader.fileno()

    def write_fileno(self) -> int:
        """The write end, for ``signal.set_wakeup_fd``: a signal then wakes ``select()``."""
        return self._writer.fileno()

    def notify(self) -> None:
        """Wake the selecting thread; safe from any thread, never blocks."""
        # A full pipe already holds wake-ups; a closed one means shutdown: either way, awake.
        with contextlib.suppress(OSError):
            self._writer.send(b"\0")

    def drain(self) -> None:
        """Consume pending wake-ups (selecting thread only)."""
        with contextlib.suppress(OSError):
            while self._reader.recv(4096):
                pass

    def close(self) -> None:
        """Close both ends."""
        self._reader.close()
        self._writer.close()
