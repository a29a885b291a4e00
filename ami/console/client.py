"""HTTP calls to a run's control API, and the failures a user can act on.

Plain :mod:`http.client`, not :mod:`urllib.request`: urllib would send loopback
requests through an ``http_proxy`` from the environment, and the API must be reached
directly. Every failure becomes a :class:`ConsoleError` whose message names the URL and
the cause, so the console never shows a traceback for a run that is gone, busy or
guarded by a token.
"""

from __future__ import annotations

import http.client
import json
import socket
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit


class ConsoleError(Exception):
    """A failure the console reports in one line (exit code 1), never as a traceback."""


@dataclass(frozen=True)
class Endpoint:
    """Where an API listens: ``url`` is the normalised base, e.g. ``http://127.0.0.1:8391``."""

    url: str
    host: str
    port: int


def parse_url(text: str) -> Endpoint:
    """The API's base URL from what a user typed (``127.0.0.1:8391`` is accepted too).

    Raises:
        ValueError: for anything but ``http://<host>:<port>`` with at most a ``/``
            after it; the message shows an accepted form.
    """
    raw = text.strip()
    if "://" not in raw:
        raw = "http://" + raw
    example = "expected http://<host>:<port>, e.g. http://127.0.0.1:8391"
    try:
        parts = urlsplit(raw)
        port = parts.port
    except ValueError as error:
        raise ValueError(f"--url {text!r}: {error}; {example}") from None
    if parts.scheme != "http":
        raise ValueError(
            f"--url {text!r}: the control API speaks plain http, not {parts.scheme}; {example}"
        )
    if not parts.hostname or port is None:
        raise ValueError(f"--url {text!r}: host and port needed; {example}")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(f"--url {text!r}: give the API's base URL without a path; {example}")
    host = parts.hostname
    shown = f"[{host}]" if ":" in host else host
    return Endpoint(f"http://{shown}:{port}", host, port)


class ControlClient:
    """Calls one run's API; each request on a fresh connection, as the API expects.

    Args:
        endpoint: Where the API listens.
        token: Sent as ``Authorization: Bearer <token>`` when given.
        timeout: Seconds each request may take (connecting, and each read).
    """

    def __init__(self, endpoint: Endpoint, token: str | None, timeout: float) -> None:
        self.endpoint = endpoint
        self.token = token
        self.timeout = timeout

    @property
    def url(self) -> str:
        """The base URL, as messages name it."""
        return self.endpoint.url

    def call(self, method: str, path: str, timeout: float | None = None) -> dict[str, Any]:
        """The JSON object the API answers to ``method path``.

        Args:
            method: ``GET`` or ``POST`` (a POST sends ``{}`` as JSON, which the API's
                guard requires).
            path: e.g. ``/api/status``.
            timeout: Seconds for this request, when it may take longer than others.

        Raises:
            ConsoleError: unreachable, no answer in time, not the API, or an error
                status, naming the URL and the cause.
        """
        limit = self.timeout if timeout is None else timeout
        headers = {"Accept": "application/json"}
        body: bytes | None = None
        if method == "POST":
            body = b"{}"
            headers["Content-Type"] = "application/json"
        if self.token is not None:
            headers["Authorization"] = f"Bearer {self.token}"
        connection = http.client.HTTPConnection(
            self.endpoint.host, self.endpoint.port, timeout=limit
        )
        try:
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            status, data = response.status, response.read()
        except OSError as error:
            raise ConsoleError(self._unreachable(error, limit)) from None
        except http.client.HTTPException as error:
            raise ConsoleError(
                f"{self.url} does not answer like the control API of a run "
                f"({type(error).__name__}: {error})"
            ) from None
        finally:
            connection.close()
        reply = self._decode(data, status)
        if status >= 400:
            raise ConsoleError(self._refusal(method, path, status, reply))
        if reply is None:
            raise ConsoleError(
                f"{self.url} answered {method} {path} with something other than the "
                f"control API's JSON: {_excerpt(data)}"
            )
        return reply

    def _unreachable(self, error: OSError, limit: float) -> str:
        if isinstance(error, ConnectionRefusedError):
            return f"no run answers at {self.url} (connection refused): is it still running?"
        if isinstance(error, TimeoutError):
            return (
                f"no answer from {self.url} within {limit:g} s: the run may be busy or "
                "hung (its main.log says which); --timeout waits longer"
            )
        if isinstance(error, ConnectionResetError | BrokenPipeError):
            return (
                f"the run at {self.url} closed the connection before answering "
                f"({error.strerror or type(error).__name__}): it may be stopping"
            )
        if isinstance(error, socket.gaierror):
            return f"cannot find the host of {self.url} ({error.strerror}): check the URL"
        cause = error.strerror or str(error) or type(error).__name__
        return f"cannot reach {self.url} ({cause}): is it still running?"

    @staticmethod
    def _decode(data: bytes, status: int) -> dict[str, Any] | None:
        try:
            reply = json.loads(data)
        except (UnicodeDecodeError, ValueError):
            return None
        return reply if isinstance(reply, dict) else None

    def _refusal(self, method: str, path: str, status: int, reply: dict[str, Any] | None) -> str:
        said = str(reply.get("error")) if reply is not None and "error" in reply else ""
        detail = f": {said}" if said else ""
        if status == 401:
            if self.token is None:
                return (
                    f"the run at {self.url} needs a token (401 unauthorized): pass "
                    "--token <web_api.token> or set AMI_API_TOKEN"
                )
            return (
                f"the run at {self.url} refused the token (401 unauthorized): check "
                "--token or AMI_API_TOKEN against the run's web_api.token"
            )
        if status == 403:
            hint = "" if self.token is not None else "; if it needs a token, pass --token"
            return f"the run at {self.url} refused {method} {path} (403 forbidden){detail}{hint}"
        if status == 404:
            return (
                f"{self.url} has no {path} (404 not found){detail}: is it the control "
                "API of an ami run?"
            )
        return f"the run at {self.url} refused {method} {path} ({status}){detail}"


def _excerpt(data: bytes, limit: int = 120) -> str:
    text = data.decode("utf-8", errors="replace").strip()
    if not text:
        return "an empty body"
    return repr(text if len(text) <= limit else text[:limit] + "...")
