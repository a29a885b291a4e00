"""Non-blocking HTTP connections, driven by the main thread's own ``select()`` loop.

The main thread also enforces ``max_uptime`` and reacts to thread failures, so it must
never wait on a client: every socket here is non-blocking, bytes are taken as they
arrive, and each connection lives under one deadline (its whole request, then its
reply). A server thread would be simpler but the runtime has exactly three threads.

One request per connection (every reply says ``Connection: close``): a connection's
life is then bounded by its deadlines, and the cap on open connections bounds memory.
Past the cap, new connections wait in the listen backlog (not accepted, not refused)
until a slot frees, so a burst is answered late rather than dropped.
"""

from __future__ import annotations

import abc
import contextlib
import enum
import errno
import logging
import selectors
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from ami.web.http_parsing import (
    HttpError,
    RequestHead,
    first_line,
    head_end,
    parse_head,
    render_response,
)

logger = logging.getLogger(__name__)

LINGER_SECONDS = 1.0
"""After a reply, how long the API drains what a client still sends before closing.

Closing a socket with unread input makes the kernel reset the connection, and a reset
can destroy a reply the client has not read yet (e.g. a 413 sent before the body)."""

_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_RECV_BYTES = 65536
_ACCEPT_RETRY_SECONDS = 0.5


@dataclass(frozen=True)
class Reply:
    """A JSON reply: status, body, extra headers."""

    status: int
    body: Mapping[str, Any]
    headers: Mapping[str, str] = field(default_factory=dict)


class Deferred(abc.ABC):
    """A reply not known yet; the loop polls it at ``wake_at`` (e.g. a pause's ack)."""

    wake_at: float

    @abc.abstractmethod
    def poll(self, now: float, final: bool = False) -> Reply | None:
        """The reply once known, else None; ``final`` (the API is closing) must answer."""


class Handler(Protocol):
    """What the server asks of the routes."""

    def check(self, head: RequestHead) -> None:
        """Raise :class:`HttpError` to refuse a request from its head alone."""

    def handle(self, head: RequestHead, body: bytes) -> Reply | Deferred:
        """Answer a complete request."""


@dataclass(frozen=True)
class Limits:
    """Bounds on what one client may cost (``web_api.*`` keys)."""

    request_timeout: float
    max_connections: int
    max_header_bytes: int
    max_body_bytes: int


class _Phase(enum.Enum):
    READING = "reading"  # until the head and Content-Length bytes of body are in
    WAITING = "waiting"  # for a deferred reply; not watched
    WRITING = "writing"  # the reply, as fast as the client takes it
    LINGERING = "lingering"  # reply sent, our side shut; draining until the client closes


class _Connection:
    def __init__(self, sock: socket.socket, peer: str, deadline: float) -> None:
        self.sock = sock
        self.peer = peer
        self.deadline = deadline
        self.phase = _Phase.READING
        self.inbox = bytearray()
        self.head: RequestHead | None = None
        self.outbox = b""
        self.pending: Deferred | None = None
        self.events = 0
        self.closed = False

    def line(self) -> str:
        if self.head is not None:
            return self.head.request_line
        return first_line(self.inbox) or "-"  # "-": nothing arrived


class Server:
    """Accepts, reads, answers and closes connections without ever blocking.

    Args:
        listener: A bound, listening socket (made non-blocking here).
        handler: The routes.
        limits: Deadlines and caps.
    """

    def __init__(
        self,
        listener: socket.socket,
        handler: Handler,
        limits: Limits,
    ) -> None:
        listener.setblocking(False)
        self._listener = listener
        self._handler = handler
        self._limits = limits
        self._selector: selectors.BaseSelector | None = None
        self._listening = False
        self._closed = False
        self._accept_again_at = 0.0
        self._connections: dict[_Connection, None] = {}

    @property
    def connection_count(self) -> int:
        """Connections accepted and not yet closed (never above the cap)."""
        return len(self._connections)

    def register(self, selector: selectors.BaseSelector) -> None:
        """Let ``selector`` report this server's sockets (call once, before selecting)."""
        self._selector = selector
        self._update_listening()

    def on_ready(self, key: selectors.SelectorKey, events: int) -> None:
        """Act on one of this server's sockets that ``select()`` reported."""
        if key.fileobj is self._listener:
            self._accept()
            return
        connection = key.data
        if not isinstance(connection, _Connection) or connection.closed:
            return  # closed earlier in the same batch of events
        if events & selectors.EVENT_READ:
            self._read(connection)
        if events & selectors.EVENT_WRITE and connection.phase is _Phase.WRITING:
            self._flush(connection)

    def timeout(self, limit: float | None) -> float | None:
        """Seconds ``select()`` may wait: ``limit``, or less for the nearest deadline."""
        times = [
            c.pending.wake_at if c.pending is not None else c.deadline for c in self._connections
        ]
        if not self._listening and self._accept_again_at:
            times.append(self._accept_again_at)
        if not times:
            return limit
        wait = max(0.0, min(times) - time.monotonic())
        return wait if limit is None else min(limit, wait)

    def poll(self) -> None:
        """Enforce deadlines and answer deferred replies whose time has come."""
        now = time.monotonic()
        for connection in list(self._connections):
            if connection.pending is not None:
                # Every turn, not only at wake_at: what it waits for (threads parking)
                # wakes the loop itself.
                reply = connection.pending.poll(now)
                if reply is not None:
                    self._answer(connection, reply, now)
            elif now >= connection.deadline:
                if connection.phase is _Phase.READING:
                    self._expire(connection, now)
                else:
                    self._drop(connection)
        self._update_listening()

    def close(self) -> None:
        """Give deferred replies their final answer (one try each), close every socket."""
        now = time.monotonic()
        self._closed = True
        for connection in list(self._connections):
            if connection.pending is not None:
                reply = connection.pending.poll(now, final=True)
                assert reply is not None, "a final poll answers"
                self._log(connection, reply.status)
                connection.outbox = self._render(connection, reply)
            if connection.outbox:  # one try: the run is stopping
                with contextlib.suppress(OSError):
                    connection.sock.send(connection.outbox)
            self._drop(connection)
        self._unwatch(self._listener)
        self._listening = False
        self._listener.close()

    def _accept(self) -> None:
        now = time.monotonic()
        while len(self._connections) < self._limits.max_connections:
            try:
                sock, address = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                break
            except ConnectionAbortedError:
                continue
            except OSError as error:
                # Out of descriptors or memory: retry later instead of spinning on a
                # listener that stays readable. Other errors concern one connection.
                if error.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    self._accept_again_at = now + _ACCEPT_RETRY_SECONDS
                logger.warning("web API cannot accept a connection: %s", error)
                break
            sock.setblocking(False)
            connection = _Connection(sock, _peer(address), now + self._limits.request_timeout)
            self._connections[connection] = None
            self._watch(connection, selectors.EVENT_READ)
        self._update_listening()

    def _read(self, connection: _Connection) -> None:
        try:
            data = connection.sock.recv(_RECV_BYTES)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._drop(connection)
            return
        if not data:  # the client closed: an unfinished request cannot be answered
            self._drop(connection)
            return
        if connection.phase is _Phase.READING:
            connection.inbox += data
            self._advance(connection)

    def _advance(self, connection: _Connection) -> None:
        now = time.monotonic()
        head = connection.head
        try:
            if head is None:
                end = head_end(connection.inbox, self._limits.max_header_bytes)
                if end is None:
                    return
                head = parse_head(bytes(connection.inbox[:end]))
                del connection.inbox[:end]
                connection.head = head
                self._check(head)
                if head.content_length > len(connection.inbox):
                    self._continue(connection, head)
                    return
            if len(connection.inbox) < head.content_length:
                return
            body = bytes(connection.inbox[: head.content_length])
            connection.inbox.clear()
            result = self._handler.handle(head, body)
        except HttpError as error:
            self._answer(connection, Reply(error.status, error.body(), error.headers), now)
            return
        except Exception as error:
            logger.exception('web API %s "%s" failed', connection.peer, connection.line())
            reply = Reply(500, {"error": f"internal error: {type(error).__name__}: {error}"})
            self._answer(connection, reply, now)
            return
        if isinstance(result, Deferred):
            connection.pending = result
            connection.phase = _Phase.WAITING
            self._watch(connection, 0)
            due = result.poll(now)
            if due is not None:
                self._answer(connection, due, now)
            return
        self._answer(connection, result, now)

    def _check(self, head: RequestHead) -> None:
        if head.content_length > self._limits.max_body_bytes:
            raise HttpError(
                413,
                f"request body of {head.content_length} bytes is over the limit of "
                f"{self._limits.max_body_bytes} (web_api.max_body_bytes); these routes "
                "need no body",
            )
        self._handler.check(head)

    def _continue(self, connection: _Connection, head: RequestHead) -> None:
        """Tell a client that waits for it (``Expect: 100-continue``) to send its body."""
        if head.headers.get("expect", "").lower() != "100-continue":
            return
        try:
            sent = connection.sock.send(_CONTINUE)
        except OSError:
            sent = 0
        if sent != len(_CONTINUE):  # a fresh socket that cannot take 25 bytes is gone
            self._drop(connection)

    def _expire(self, connection: _Connection, now: float) -> None:
        logger.info(
            "web API %s: request not complete within %s s (web_api.request_timeout); closing",
            connection.peer,
            self._limits.request_timeout,
        )
        reply = Reply(
            408,
            {
                "error": f"request not complete within {self._limits.request_timeout} s "
                "(web_api.request_timeout)"
            },
        )
        self._answer(connection, reply, now, seconds=LINGER_SECONDS)

    def _answer(
        self, connection: _Connection, reply: Reply, now: float, seconds: float | None = None
    ) -> None:
        self._log(connection, reply.status)
        connection.pending = None
        connection.phase = _Phase.WRITING
        connection.outbox = self._render(connection, reply)
        connection.deadline = now + (self._limits.request_timeout if seconds is None else seconds)
        self._flush(connection)

    def _render(self, connection: _Connection, reply: Reply) -> bytes:
        head = connection.head
        with_body = head is None or head.method != "HEAD"
        return render_response(reply.status, reply.body, reply.headers, with_body)

    def _flush(self, connection: _Connection) -> None:
        while connection.outbox:
            try:
                sent = connection.sock.send(connection.outbox)
            except (BlockingIOError, InterruptedError):
                self._watch(connection, selectors.EVENT_WRITE)
                return
            except OSError:
                self._drop(connection)
                return
            connection.outbox = connection.outbox[sent:]
        try:
            connection.sock.shutdown(socket.SHUT_WR)
        except OSError:
            self._drop(connection)
            return
        connection.phase = _Phase.LINGERING
        linger = min(LINGER_SECONDS, self._limits.request_timeout)
        connection.deadline = min(connection.deadline, time.monotonic() + linger)
        self._watch(connection, selectors.EVENT_READ)

    def _log(self, connection: _Connection, status: int) -> None:
        logger.info('web API %s "%s" %d', connection.peer, connection.line(), status)

    def _drop(self, connection: _Connection) -> None:
        self._watch(connection, 0)
        connection.sock.close()
        connection.closed = True
        self._connections.pop(connection, None)
        self._update_listening()

    def _watch(self, connection: _Connection, events: int) -> None:
        selector = self._selector
        if events == connection.events or selector is None or selector.get_map() is None:
            connection.events = events
            return
        if connection.events == 0:
            selector.register(connection.sock, events, connection)
        elif events == 0:
            selector.unregister(connection.sock)
        else:
            selector.modify(connection.sock, events, connection)
        connection.events = events

    def _unwatch(self, sock: socket.socket) -> None:
        selector = self._selector
        if selector is not None and selector.get_map() is not None:
            with contextlib.suppress(KeyError, ValueError):  # not registered
                selector.unregister(sock)

    def _update_listening(self) -> None:
        """Watch the listener only while a connection may be accepted."""
        if self._closed or self._selector is None or self._selector.get_map() is None:
            return
        if self._accept_again_at and time.monotonic() >= self._accept_again_at:
            self._accept_again_at = 0.0
        wanted = len(self._connections) < self._limits.max_connections and not self._accept_again_at
        if wanted and not self._listening:
            self._selector.register(self._listener, selectors.EVENT_READ)
        elif self._listening and not wanted:
            self._selector.unregister(self._listener)
        self._listening = wanted


def _peer(address: Any) -> str:
    if isinstance(address, tuple) and len(address) >= 2:
        host = str(address[0])
        return f"[{host}]:{address[1]}" if ":" in host else f"{host}:{address[1]}"
    return str(address)
