"""HTTP control API: status, pause, resume, save, shutdown; JSON in, JSON out.

Served by the main thread itself from its ``select()`` loop, on non-blocking sockets
(:mod:`ami.web.server`): the main thread also enforces ``max_uptime`` and reacts to
thread failures, so no client may make it wait, and a server thread would break the
rule of exactly three threads. The loop plugs in with :meth:`ControlAPI.register`
(the API's sockets join the loop's selector), :meth:`ControlAPI.timeout` (how long the
loop may sleep), :meth:`ControlAPI.on_ready` (a socket of the API is ready) and
:meth:`ControlAPI.poll` (once per turn: deadlines and pending replies).

Routes:
    GET  /api/status    -> {"status": <the system's state>, "threads": {...}, ...}
    POST /api/pause     -> parks both background threads; answers once they have parked
                           (or after ``pause_ack_timeout``) with "acknowledged" and
                           "ack_seconds"
    POST /api/resume
    POST /api/save      -> each thread hands over its state at its next safe point (at
                           once if paused); the main thread writes the checkpoint, and
                           ``/api/status`` reports on request ``save_request``
    POST /api/shutdown  -> the run stops cleanly and exits 0

The pause reply is deferred, not waited for: the connection stays open while the loop
serves other requests, and checks ``wait_until_paused(0)`` on each turn (a thread that
parks wakes the loop), so "acknowledged": true still means the threads really sit still.

Who may call it is decided in :mod:`ami.web.guard`: loopback only unless
``web_api.token`` is set, JSON-only POSTs, and ``Host``/``Origin`` checks that keep web
pages out.
"""

from __future__ import annotations

import errno
import json
import logging
import selectors
import socket
import time
from collections.abc import Callable, Mapping
from typing import Any, Literal

from typing_extensions import override

from ami.config_checks import positive_number, whole_number
from ami.system.control import SystemControl
from ami.web.guard import RequestGuard, check_binding, is_loopback
from ami.web.http_parsing import HttpError, RequestHead, printable
from ami.web.server import Deferred, Limits, Reply, Server

logger = logging.getLogger(__name__)

StatusProvider = Callable[[], Mapping[str, Any]]
Action = Callable[[], Reply | Deferred]

DEFAULT_PORT = 8391
"""Where ``web_api.port=auto`` listens unless another process already does."""

BACKLOG = 128
"""Connections the kernel queues before the API accepts them: a burst of clients (or
more than ``max_connections``) waits there instead of being refused."""


class ControlAPI:
    """The web API's sockets and routes, driven by the main thread's loop.

    Args:
        host: Interface to bind; ``127.0.0.1`` (or ``::1``, ``localhost``) keeps the API
            on this machine. Any other address needs ``token``.
        port: TCP port; 0 picks a free one; ``"auto"`` tries :data:`DEFAULT_PORT` and
            picks a free one when it is taken (a second run on the machine, or parallel
            jobs of a sweep). The chosen port is printed at start; an explicit port that
            is taken fails the start instead, because a client expects it there.
        request_timeout: Seconds a client has to send its whole request (head and
            body), and again to take the reply; then the connection is closed.
        pause_ack_timeout: Seconds ``POST /api/pause`` waits for the threads to park
            before it answers ``"acknowledged": false``.
        token: Secret every request must send as ``Authorization: Bearer <token>``;
            required beyond loopback.
        max_connections: Connections served at once; more wait in the listen backlog.
        max_header_bytes: Longest request head accepted (431 beyond).
        max_body_bytes: Longest request body accepted (413 beyond).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int | str = "auto",
        request_timeout: float = 2.0,
        pause_ack_timeout: float = 1.0,
        token: str | None = None,
        max_connections: int = 64,
        max_header_bytes: int = 8192,
        max_body_bytes: int = 65536,
    ) -> None:
        self.host, self._token = check_binding(host, token)
        self.port = _check_port(port)
        self.request_timeout = positive_number("web_api.request_timeout", request_timeout)
        self.pause_ack_timeout = positive_number("web_api.pause_ack_timeout", pause_ack_timeout)
        self.limits = Limits(
            request_timeout=self.request_timeout,
            max_connections=whole_number("web_api.max_connections", max_connections),
            max_header_bytes=whole_number("web_api.max_header_bytes", max_header_bytes, 256),
            max_body_bytes=whole_number("web_api.max_body_bytes", max_body_bytes, 0),
        )
        self._server: socket.socket | None = None
        self._http: Server | None = None

    def open(self, system: SystemControl, status: StatusProvider) -> None:
        """Bind the socket (main thread, before the threads start, to fail early)."""
        auto = self.port == "auto"
        listener = _listen_auto(self.host) if auto else _listen(self.host, int(self.port))
        port = int(listener.getsockname()[1])
        guard = RequestGuard(self.host, port, self._token)
        routes = _Routes(system, status, guard, self.pause_ack_timeout)
        self._http = Server(listener, routes, self.limits)
        self._server = listener
        if not is_loopback(self.host):
            logger.warning(
                "the control API listens on %s, beyond this machine; every request needs "
                "the token (web_api.token)",
                self.host,
            )

    @property
    def needs_token(self) -> bool:
        """Whether every request must send ``Authorization: Bearer <web_api.token>``."""
        return self._token is not None

    @property
    def url(self) -> str:
        """Base URL, with the real port when 0 was asked for."""
        address = self._require_socket().getsockname()
        host, port = str(address[0]), int(address[1])
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{port}"

    @property
    def connection_count(self) -> int:
        """Client connections open now (at most ``max_connections``)."""
        return self._require().connection_count

    def register(self, selector: selectors.BaseSelector) -> None:
        """Add the API's sockets to the main loop's ``selector`` (once, before selecting).

        The API registers and unregisters its connections there itself; keys it owns
        go back to :meth:`on_ready`.
        """
        self._require().register(selector)

    def on_ready(self, key: selectors.SelectorKey, events: int) -> None:
        """Act on a key of the API's that ``select()`` reported; never blocks."""
        self._require().on_ready(key, events)

    def timeout(self, limit: float | None) -> float | None:
        """Seconds the loop may sleep in ``select()``: ``limit``, or less for a deadline."""
        return self._require().timeout(limit)

    def poll(self) -> None:
        """Once per loop turn: close connections past their deadline, send due replies."""
        self._require().poll()

    def close(self) -> None:
        """Answer pending replies as things stand, stop listening, close connections."""
        if self._http is not None:
            self._http.close()
            self._http = None
            self._server = None

    def _require(self) -> Server:
        if self._http is None:
            raise RuntimeError("the control API is not open")
        return self._http

    def _require_socket(self) -> socket.socket:
        if self._server is None:
            raise RuntimeError("the control API is not open")
        return self._server


def _check_port(port: object) -> int | Literal["auto"]:
    if port == "auto":
        return "auto"
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ValueError(
            f"web_api.port={port!r}: expected auto (8391, else a free port), 0 (a free "
            "port) or a port number 1..65535"
        )
    return port


def _listen_auto(host: str) -> socket.socket:
    """:data:`DEFAULT_PORT` if it is free, else a port the system picks.

    Binding is the test: there is no window in which two runs both see the port free.
    """
    try:
        return _listen(host, DEFAULT_PORT)
    except OSError as error:
        if error.errno != errno.EADDRINUSE:
            raise
    listener = _listen(host, 0)
    logger.info(
        "port %d is taken (another run?); the control API uses port %d instead",
        DEFAULT_PORT,
        listener.getsockname()[1],
    )
    return listener


def _listen(host: str, port: int) -> socket.socket:
    """A listening socket on ``host`` (IPv4 or IPv6), with the errors users can act on."""
    try:
        infos = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE | socket.AI_NUMERICSERV
        )
    except socket.gaierror as error:
        raise OSError(
            errno.EADDRNOTAVAIL,
            f"web API cannot listen on {host}:{port}: {error.strerror}; check web_api.host",
        ) from error
    # IPv4 first where a name has both, so `localhost` prints the familiar 127.0.0.1.
    family, kind, protocol, _, address = min(infos, key=lambda i: i[0] != socket.AF_INET)
    listener = socket.socket(family, kind, protocol)
    try:
        if hasattr(socket, "SO_EXCLUSIVEADDRUSE"):  # Windows: never share a taken port
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_EXCLUSIVEADDRUSE, 1)
        else:  # POSIX: rebind right after a previous run, still refused while one listens
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(address)
        listener.listen(BACKLOG)
    except OSError as error:
        listener.close()
        hint = (
            "another run may be using it; choose web_api.port=auto (a free port if "
            f"{DEFAULT_PORT} is taken), web_api.port=0 or another port"
            if error.errno == errno.EADDRINUSE
            else "check web_api.host"
        )
        message = f"web API cannot listen on {host}:{port}: {error.strerror}; {hint}"
        raise OSError(error.errno, message) from error
    return listener


class _Routes:
    """The API's routes, and the checks a request passes before its action runs.

    Order: the guard's ``Host`` and token checks, then the route (404) and method
    (405, with ``Allow``; so a CORS preflight, an OPTIONS, gets a 405 without any
    ``Access-Control-Allow-*`` header), then ``Origin`` (403) and a POST's content
    type (415).
    """

    def __init__(
        self,
        system: SystemControl,
        status: StatusProvider,
        guard: RequestGuard,
        pause_ack_timeout: float,
    ) -> None:
        self._system = system
        self._status = status
        self._guard = guard
        self._pause_ack_timeout = pause_ack_timeout
        self._routes: dict[str, dict[str, Action]] = {
            "/api/status": {"GET": self._get_status},
            "/api/pause": {"POST": self._post_pause},
            "/api/resume": {"POST": self._post_resume},
            "/api/save": {"POST": self._post_save},
            "/api/shutdown": {"POST": self._post_shutdown},
        }

    def check(self, head: RequestHead) -> None:
        self._guard.check_host_and_token(head)
        methods = self._routes.get(head.path)
        if methods is None:
            raise HttpError(
                404,
                "not found",
                details={"path": printable(head.path), "routes": sorted(self._routes)},
            )
        if head.method not in methods:
            allowed = ", ".join(sorted(methods))
            raise HttpError(
                405,
                f"method {head.method} not allowed",
                {"Allow": allowed},
                {"path": head.path, "allowed": allowed},
            )
        self._guard.check_origin(head)
        if head.method == "POST":
            self._guard.check_post(head)

    def handle(self, head: RequestHead, body: bytes) -> Reply | Deferred:
        _check_no_parameters(body)
        return self._routes[head.path][head.method]()

    def _get_status(self) -> Reply:
        return Reply(200, self._status())

    def _post_pause(self) -> Deferred:
        return _PauseReply(self._system, self._status, self._pause_ack_timeout)

    def _post_resume(self) -> Reply:
        self._system.resume()
        return Reply(200, self._status())

    def _post_save(self) -> Reply:
        request = self._system.request_save()
        return Reply(200, {**self._status(), "save_request": request})

    def _post_shutdown(self) -> Reply:
        self._system.shutdown()
        return Reply(200, self._status())


def _check_no_parameters(body: bytes) -> None:
    """Routes take no parameters: refuse a body that would be silently ignored."""
    if not body.strip():
        return
    try:
        parsed = json.loads(body)
    except (UnicodeDecodeError, ValueError) as error:
        raise HttpError(400, f"request body is not JSON ({error}); send no body or {{}}") from None
    if parsed != {}:
        raise HttpError(
            400,
            f"these routes take no parameters; got {printable(body.decode(errors='replace'))}; "
            "send no body or {}",
        )


class _PauseReply(Deferred):
    """``POST /api/pause``: ask at once, answer once the threads have parked or time is up."""

    def __init__(self, system: SystemControl, status: StatusProvider, timeout: float) -> None:
        self._system = system
        self._status = status
        self._timeout = timeout
        self._started = time.monotonic()
        self.wake_at = self._started + timeout
        system.pause()

    @override
    def poll(self, now: float, final: bool = False) -> Reply | None:
        # True only once every live thread has parked for this pause and no resume or
        # shutdown came since; a resume meanwhile makes the reply wait out its timeout.
        acknowledged = self._system.wait_until_paused(0)
        waited = max(0.0, now - self._started)
        if acknowledged or final or waited >= self._timeout:
            body = {**self._status(), "acknowledged": acknowledged, "ack_seconds": round(waited, 4)}
            return Reply(200, body)
        return None  # asked again on the next turn: a parking thread wakes the loop
