"""Who may talk to the control API: loopback by default, never a browser page, a token beyond.

Three defences, because a web page the operator visits is the likeliest attacker:

- a POST must say ``Content-Type: application/json`` or carry ``X-AMI-Control: 1``;
  a page can send either only after a CORS preflight, which the API never approves,
  so the "simple" cross-origin POST (no body, ``text/plain``, a form) is refused;
- the ``Host`` header must name this API (``127.0.0.1:<port>``, ``localhost:<port>``,
  ``[::1]:<port>``), which defeats DNS rebinding (a page whose name was re-pointed at
  127.0.0.1 still sends its own name), and an ``Origin`` other than the API's own is
  refused;
- an address beyond loopback needs ``web_api.token``: other machines are not trusted,
  and every request must then send ``Authorization: Bearer <token>``.
"""

from __future__ import annotations

import hmac
import ipaddress
import re

from ami.web.http_parsing import HttpError, RequestHead, printable

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
CONTROL_HEADER = "x-ami-control"
MIN_TOKEN_LENGTH = 16
_TOKEN_TEXT = re.compile(r"[\x21-\x7e]+")


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` keeps the API on this machine.

    Only ``localhost`` and loopback addresses count: any other name may resolve (now or
    later) to an address other machines reach, so it is treated as reaching them.
    """
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def is_wildcard(host: str) -> bool:
    """Whether ``host`` means every interface (``0.0.0.0``, ``::``)."""
    try:
        return ipaddress.ip_address(host.strip("[]")).is_unspecified
    except ValueError:
        return False


def check_binding(host: object, token: object) -> tuple[str, str | None]:
    """Validate ``web_api.host`` and ``web_api.token`` before anything listens.

    Returns:
        The host (brackets of an IPv6 literal removed) and the token.

    Raises:
        ValueError: naming the key, for a bad value or a non-loopback host without a
            token.
    """
    if not isinstance(host, str) or not host.strip("[] "):
        raise ValueError(
            f"web_api.host={host!r}: expected an address or name, e.g. 127.0.0.1, ::1 or localhost"
        )
    host = host.strip().strip("[]")
    if isinstance(token, int | float) and not isinstance(token, bool):
        raise ValueError(
            f"web_api.token={token!r} was read as a number; quote it so it stays text "
            f"(web_api.token=\"'{token}'\"), and use at least {MIN_TOKEN_LENGTH} characters"
        )
    if token is not None and (
        not isinstance(token, str)
        or len(token) < MIN_TOKEN_LENGTH
        or not _TOKEN_TEXT.fullmatch(token)
    ):
        shown = "<hidden>" if isinstance(token, str) else repr(token)
        raise ValueError(
            f"web_api.token={shown}: expected null (no token) or a secret of at least "
            f"{MIN_TOKEN_LENGTH} printable ASCII characters without spaces, e.g. from "
            "python -c 'import secrets; print(secrets.token_urlsafe())'"
        )
    if token is None and not is_loopback(host):
        raise ValueError(
            f"web_api.host={host}: this address reaches beyond this machine, so the control "
            "API needs web_api.token=<secret> (clients then send 'Authorization: Bearer "
            "<secret>'); or keep web_api.host=127.0.0.1 (or ::1, localhost)"
        )
    return host, token


class RequestGuard:
    """Checks each request's ``Host``, ``Origin``, token and POST content type.

    Args:
        host: The configured ``web_api.host``; its name (with the port) is an accepted
            ``Host`` too, besides the usual loopback names. A wildcard (``0.0.0.0``,
            ``::``) has no name of its own, so any name with the right port is
            accepted: the token, which such a host requires and no browser sends by
            itself, is then the guard.
        port: The port actually bound.
        token: The bearer token every request must carry, or None.
    """

    def __init__(self, host: str, port: int, token: str | None) -> None:
        names = set(LOOPBACK_NAMES)
        if not is_wildcard(host):  # its own name, a loopback one too (127.0.0.2)
            names.add(f"[{host.lower()}]" if ":" in host else host.lower())
        self._port = str(port)
        self._any_name = is_wildcard(host)
        self.hosts = sorted(f"{name}:{port}" for name in names)
        self._accepted = set(self.hosts) | (names if port == 80 else set())
        self._origins = {f"http://{name}" for name in self._accepted}
        self._token = token.encode() if token is not None else None

    def check_host_and_token(self, head: RequestHead) -> None:
        """Refuse a request not meant for this API, or without the token.

        Raises:
            HttpError: 400 without a ``Host``; 421 for another ``Host``; 401 without the
                right token.
        """
        host = head.headers.get("host")
        if host is None:
            raise HttpError(400, "Host header required (e.g. Host: 127.0.0.1:<port>)")
        if not self._host_accepted(host.lower()):
            raise HttpError(
                421,
                f"Host {printable(host)!r} does not name this API; expected one of "
                f"{', '.join(self.hosts)} (requests for other names are refused to defeat "
                "DNS rebinding)",
            )
        if self._token is not None and not self._token_matches(head):
            raise HttpError(
                401,
                "missing or wrong token: send 'Authorization: Bearer <web_api.token>'",
                {"WWW-Authenticate": 'Bearer realm="ami"'},
            )

    def check_origin(self, head: RequestHead) -> None:
        """Refuse a request a web page of another origin sent.

        Raises:
            HttpError: 403 for an ``Origin`` other than the API's own.
        """
        origin = head.headers.get("origin")
        if origin is not None and origin.lower() not in self._origins:
            raise HttpError(
                403,
                f"cross-origin request from Origin {printable(origin)!r} refused: the "
                "control API answers scripts and command-line clients, not web pages",
            )

    @staticmethod
    def check_post(head: RequestHead) -> None:
        """Refuse a POST a web page could send without a CORS preflight.

        Raises:
            HttpError: 415 unless the POST is JSON or carries ``X-AMI-Control: 1``.
        """
        media_type = head.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if media_type == "application/json" or head.headers.get(CONTROL_HEADER) == "1":
            return
        sent = head.headers.get("content-type")
        raise HttpError(
            415,
            f"POST needs 'Content-Type: application/json' (got {printable(sent or 'none')!r}) "
            "or the header 'X-AMI-Control: 1', so that a web page cannot send it; "
            "e.g. curl -X POST -H 'Content-Type: application/json' <url>",
        )

    def _host_accepted(self, host: str) -> bool:
        if host in self._accepted:
            return True
        if not self._any_name:
            return False
        name, _, port = host.rpartition(":")
        return bool(name) and not name.endswith(":") and port == self._port

    def _token_matches(self, head: RequestHead) -> bool:
        assert self._token is not None
        scheme, _, credential = head.headers.get("authorization", "").partition(" ")
        supplied = credential.strip().encode("latin-1", errors="replace")
        # Compare even after a wrong scheme, so timing does not tell which part was wrong.
        matches = hmac.compare_digest(supplied, self._token)
        return matches and scheme.lower() == "bearer"
