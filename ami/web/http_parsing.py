"""HTTP/1.x request heads and JSON responses, as bytes in and bytes out.

The main thread reads each client's bytes as they arrive and parses a head only once it
is complete, so nothing here touches a socket or waits. Every limit is explicit: a
head past ``max_bytes`` is refused before it is parsed, and a ``Content-Length`` is
checked before any body is read, so no client can make the API buffer more than
those limits.
"""

from __future__ import annotations

import email.utils
import http
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_VERSION = re.compile(r"HTTP/[0-9]\.[0-9]")
_LENGTH = re.compile(r"[0-9]{1,18}")
_HEAD_END = re.compile(rb"\r?\n\r?\n")
_LINE_END = re.compile(r"\r?\n")
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")

SINGLE_HEADERS = frozenset(
    {"host", "origin", "authorization", "content-length", "content-type", "x-ami-control"}
)
"""Headers that decide how a request is read or whether it is allowed: two copies are
ambiguous (which one did a proxy check?), so a second copy is an error."""


class HttpError(Exception):
    """A request the API answers with an error status and a JSON explanation.

    Args:
        status: HTTP status code.
        message: What was wrong and what would be accepted (goes into ``"error"``).
        headers: Extra response headers (``Allow``, ``WWW-Authenticate``).
        details: Extra JSON fields for the response body.
    """

    def __init__(
        self,
        status: int,
        message: str,
        headers: Mapping[str, str] | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = dict(headers or {})
        self.details = dict(details or {})

    def body(self) -> dict[str, Any]:
        """The JSON body of the error response."""
        return {"error": self.message, **self.details}


@dataclass(frozen=True)
class RequestHead:
    """A parsed request line and headers (names lower-cased)."""

    method: str
    target: str
    version: str
    headers: Mapping[str, str]
    content_length: int

    @property
    def path(self) -> str:
        """The target without its query and trailing slash: routes take no parameters."""
        return self.target.split("?", 1)[0].rstrip("/") or "/"

    @property
    def request_line(self) -> str:
        """The request line as it may be logged (control characters escaped)."""
        return printable(f"{self.method} {self.target} {self.version}")


def printable(text: str, limit: int = 200) -> str:
    r"""``text`` safe for a log line or console: control characters escaped, bounded.

    A client controls the request line and headers; written raw, a ``\r`` or an ANSI
    escape sequence would forge log lines or rewrite the operator's terminal.
    """
    shown = text.encode("unicode_escape").decode("ascii")
    return shown if len(shown) <= limit else shown[:limit] + "..."


def first_line(data: bytes | bytearray) -> str:
    """The first line of what a client sent, escaped, for logging a request we refused."""
    return printable(bytes(data[:400]).split(b"\n", 1)[0].rstrip(b"\r").decode("latin-1"))


def head_end(data: bytes | bytearray, max_bytes: int) -> int | None:
    """Offset just past the blank line that ends the head; None while it is incomplete.

    Raises:
        HttpError: 431 when the head is (or would be) longer than ``max_bytes``.
    """
    match = _HEAD_END.search(data, 0, max_bytes + 4)
    if match is not None and match.start() <= max_bytes:
        return match.end()
    if len(data) >= max_bytes:
        raise HttpError(
            431,
            f"request head is longer than {max_bytes} bytes (web_api.max_header_bytes)",
        )
    return None


def parse_head(data: bytes) -> RequestHead:
    """Parse a complete head: ``METHOD /path HTTP/1.x``, then ``Name: value`` lines.

    Raises:
        HttpError: 400 for a malformed line, a duplicate of a deciding header or a bad
            ``Content-Length``; 505 for a version other than HTTP/1.x; 501 for a
            ``Transfer-Encoding`` (bodies must come with a ``Content-Length``).
    """
    lines = _LINE_END.split(data.decode("latin-1").strip("\r\n"))
    method, target, version = _request_line(lines[0])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, value = _header_line(line)
        key = name.lower()
        if key in headers and key in SINGLE_HEADERS:
            raise HttpError(400, f"duplicate {name} header: send it once")
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    if "transfer-encoding" in headers:
        raise HttpError(
            501,
            f"Transfer-Encoding {printable(headers['transfer-encoding'])!r} is not supported: "
            "send the body with a Content-Length (requests here need no body)",
        )
    length = headers.get("content-length", "0")
    if not _LENGTH.fullmatch(length):
        raise HttpError(
            400,
            f"Content-Length {printable(length)!r}: expected a whole number of bytes >= 0",
        )
    return RequestHead(method, target, version, headers, int(length))


def _request_line(line: str) -> tuple[str, str, str]:
    parts = line.split(" ")
    if len(parts) != 3:
        raise HttpError(
            400,
            f"malformed request line {printable(line)!r}: expected 'METHOD /path HTTP/1.1'",
        )
    method, target, version = parts
    if not _TOKEN.fullmatch(method):
        raise HttpError(400, f"malformed method {printable(method)!r}: expected e.g. GET or POST")
    if not target.startswith("/") or any(c <= " " or c >= "\x7f" for c in target):
        raise HttpError(
            400,
            f"malformed request target {printable(target)!r}: expected a path such as "
            "/api/status (printable ASCII)",
        )
    if not _VERSION.fullmatch(version):
        raise HttpError(400, f"malformed HTTP version {printable(version)!r}: expected HTTP/1.1")
    if not version.startswith("HTTP/1."):
        raise HttpError(505, f"HTTP version {version} is not supported: use HTTP/1.1 or 1.0")
    return method, target, version


def _header_line(line: str) -> tuple[str, str]:
    if line[:1] in (" ", "\t"):
        raise HttpError(400, "folded header lines (starting with a space) are not accepted")
    name, colon, value = line.partition(":")
    if not colon or not _TOKEN.fullmatch(name):
        raise HttpError(400, f"malformed header line {printable(line)!r}: expected 'Name: value'")
    value = value.strip(" \t")
    if _CONTROL.search(value):
        raise HttpError(400, f"header {name} holds control characters: {printable(value)!r}")
    return name, value


def render_response(
    status: int,
    body: Mapping[str, Any],
    headers: Mapping[str, str] | None = None,
    with_body: bool = True,
) -> bytes:
    """A complete ``HTTP/1.1`` JSON response that closes the connection.

    One request per connection keeps every connection's life bounded by one deadline;
    ``with_body=False`` is for HEAD, whose response must not carry a body (the headers
    still describe it).
    """
    payload = json.dumps(body).encode()
    phrase = http.HTTPStatus(status).phrase
    lines = [
        f"HTTP/1.1 {status} {phrase}",
        "Server: ami",
        f"Date: {email.utils.formatdate(usegmt=True)}",
        "Content-Type: application/json",
        f"Content-Length: {len(payload)}",
        "Cache-Control: no-store",
        "X-Content-Type-Options: nosniff",
        "Connection: close",
        *(f"{name}: {value}" for name, value in (headers or {}).items()),
    ]
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head + payload if with_body else head
