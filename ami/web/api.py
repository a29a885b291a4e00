"""HTTP control API: status, pause, resume, save, shutdown; JSON in, JSON out.

Served by the main thread itself, one request at a time from its ``select()`` loop:
a threaded server would add threads, and the runtime has exactly three. Each
connection has a socket timeout so a stalled client cannot hold the main thread.

Routes:
    GET  /api/status    -> {"status": "active" | "paused" | "stopped", ...}
    POST /api/pause     -> parks both background threads; waits for them (<= 1 s) and
                           reports "acknowledged" and "ack_seconds"
    POST /api/resume
    POST /api/save      -> the training thread saves a checkpoint at its next safe point
    POST /api/shutdown  -> the run stops cleanly and exits 0

There is no authentication: bind to loopback (the default) unless the network is
trusted.
"""

from __future__ import annotations

import errno
import http.server
import ipaddress
import json
import logging
import socket
import time
from collections.abc import Callable, Mapping
from typing import Any

from typing_extensions import override

from ami.config_checks import whole_number
from ami.system.control import SystemControl

logger = logging.getLogger(__name__)

StatusProvider = Callable[[], Mapping[str, Any]]


class ControlAPI:
    """The web API's socket and routes; the main thread calls :meth:`handle_request`.

    Args:
        host: Interface to bind; ``127.0.0.1`` keeps the API local.
        port: TCP port; 0 picks a free one (the chosen port is printed at start).
        request_timeout: Seconds a client may take to send its request.
        pause_ack_timeout: Seconds ``POST /api/pause`` waits for the threads to park.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 8391,
        request_timeout: float = 5.0,
        pause_ack_timeout: float = 1.0,
    ) -> None:
        if whole_number("web_api.port", port, minimum=0) > 65535:
            raise ValueError(f"web_api.port={port}: expected 0..65535 (0 picks a free port)")
        self.host = host
        self.port = port
        self.request_timeout = request_timeout
        self.pause_ack_timeout = pause_ack_timeout
        self._server: http.server.HTTPServer | None = None

    def open(self, system: SystemControl, status: StatusProvider) -> None:
        """Bind the socket (main thread, before the threads start, to fail early)."""
        handler = _make_handler(system, status, self.pause_ack_timeout, self.request_timeout)
        try:
            self._server = http.server.HTTPServer((self.host, self.port), handler)
        except OSError as error:
            hint = (
                "another run may be using it; choose web_api.port=<other> or web_api.port=0"
                if error.errno == errno.EADDRINUSE
                else "check web_api.host"
            )
            message = f"web API cannot listen on {self.host}:{self.port}: {error.strerror}; {hint}"
            raise OSError(error.errno, message) from error
        self._server.timeout = 0
        if not _is_loopback(self.host):
            logger.warning(
                "the control API listens on %s, beyond this machine, without authentication",
                self.host,
            )

    @property
    def url(self) -> str:
        """Base URL, with the real port when 0 was asked for."""
        address = self._require().socket.getsockname()
        host, port = str(address[0]), int(address[1])
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{port}"

    def fileno(self) -> int:
        """The listening socket, for the main thread's ``select()``."""
        return self._require().fileno()

    def handle_request(self) -> None:
        """Serve one pending connection (the socket was reported readable)."""
        self._require().handle_request()

    def close(self) -> None:
        """Stop listening."""
        if self._server is not None:
            self._server.server_close()
            self._server = None

    def _require(self) -> http.server.HTTPServer:
        if self._server is None:
            raise RuntimeError("the control API is not open")
        return self._server


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(socket.gethostbyname(host)).is_loopback
    except (OSError, ValueError):
        return False


def _make_handler(
    system: SystemControl,
    status: StatusProvider,
    pause_ack_timeout: float,
    request_timeout: float,
) -> type[http.server.BaseHTTPRequestHandler]:
    def get_status() -> tuple[int, Mapping[str, Any]]:
        return 200, status()

    def post_pause() -> tuple[int, Mapping[str, Any]]:
        started = time.perf_counter()
        system.pause()
        acknowledged = system.wait_until_paused(pause_ack_timeout)
        waited = round(time.perf_counter() - started, 4)
        return 200, {**status(), "acknowledged": acknowledged, "ack_seconds": waited}

    def post_resume() -> tuple[int, Mapping[str, Any]]:
        system.resume()
        return 200, status()

    def post_save() -> tuple[int, Mapping[str, Any]]:
        request = system.request_save()
        return 200, {**status(), "save_request": request}

    def post_shutdown() -> tuple[int, Mapping[str, Any]]:
        system.shutdown()
        return 200, status()

    routes: dict[str, dict[str, Callable[[], tuple[int, Mapping[str, Any]]]]] = {
        "/api/status": {"GET": get_status},
        "/api/pause": {"POST": post_pause},
        "/api/resume": {"POST": post_resume},
        "/api/save": {"POST": post_save},
        "/api/shutdown": {"POST": post_shutdown},
    }

    class Handler(http.server.BaseHTTPRequestHandler):
        timeout = request_timeout
        server_version = "ami"

        def do_GET(self) -> None:
            self._dispatch("GET")

        def do_POST(self) -> None:
            self._dispatch("POST")

        def do_PUT(self) -> None:
            self._dispatch("PUT")

        def do_DELETE(self) -> None:
            self._dispatch("DELETE")

        def do_PATCH(self) -> None:
            self._dispatch("PATCH")

        def _dispatch(self, method: str) -> None:
            # Requests carry no parameters; read any body so the client sees our reply.
            length = int(self.headers.get("Content-Length") or 0)
            if 0 < length <= 65536:
                self.rfile.read(length)
            path = self.path.split("?", 1)[0].rstrip("/") or "/"
            methods = routes.get(path)
            if methods is None:
                self._reply(404, {"error": "not found", "path": path, "routes": sorted(routes)})
                return
            action = methods.get(method)
            if action is None:
                allowed = ", ".join(sorted(methods))
                self._reply(
                    405,
                    {"error": f"method {method} not allowed", "path": path, "allowed": allowed},
                    {"Allow": allowed},
                )
                return
            code, body = action()
            self._reply(code, body)

        def _reply(
            self, code: int, body: Mapping[str, Any], headers: Mapping[str, str] | None = None
        ) -> None:
            payload = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(payload)

        @override
        def log_message(self, format: str, *args: Any) -> None:
            logger.info("web API %s - %s", self.address_string(), format % args)

    return Handler
