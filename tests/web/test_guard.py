"""Who may call the API: the checks on their own, with hosts a test cannot bind."""

from __future__ import annotations

import pytest

from ami.web.guard import RequestGuard, check_binding, is_loopback
from ami.web.http_parsing import HttpError, RequestHead

TOKEN = "0123456789abcdef-secret"


def head(method: str = "GET", **headers: str) -> RequestHead:
    fields = {name.replace("_", "-").lower(): value for name, value in headers.items()}
    return RequestHead(method, "/api/status", "HTTP/1.1", fields, 0)


def refusal(check, request: RequestHead) -> int:
    with pytest.raises(HttpError) as error:
        check(request)
    return error.value.status


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.0.2", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("LocalHost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.5", False),
        ("my-laptop.lan", False),  # a name could resolve anywhere
    ],
)
def test_only_loopback_addresses_and_localhost_count_as_loopback(host, loopback) -> None:
    assert is_loopback(host) is loopback


def test_a_non_loopback_host_needs_a_token_and_gets_it_checked() -> None:
    with pytest.raises(ValueError, match=r"web_api\.host=192\.168\.1\.5.*web_api\.token"):
        check_binding("192.168.1.5", None)
    assert check_binding("192.168.1.5", TOKEN) == ("192.168.1.5", TOKEN)
    assert check_binding("[::1]", None) == ("::1", None)
    with pytest.raises(ValueError, match=r"web_api\.token=<hidden>.*16"):
        check_binding("127.0.0.1", "has space but is long enough")


def test_a_numeric_token_is_refused_with_how_to_quote_it() -> None:
    with pytest.raises(ValueError, match=r"read as a number; quote it"):
        check_binding("127.0.0.1", 7)


def test_a_configured_non_loopback_host_is_an_accepted_host_name() -> None:
    guard = RequestGuard("192.168.1.5", 8391, TOKEN)
    auth = {"authorization": f"Bearer {TOKEN}"}
    guard.check_host_and_token(head(host="192.168.1.5:8391", **auth))
    guard.check_host_and_token(head(host="127.0.0.1:8391", **auth))
    assert refusal(guard.check_host_and_token, head(host="evil.example:8391", **auth)) == 421
    assert refusal(guard.check_host_and_token, head(host="192.168.1.5:8391")) == 401
    guard.check_origin(head(origin="http://192.168.1.5:8391"))
    assert refusal(guard.check_origin, head(origin="http://evil.example")) == 403


def test_a_wildcard_host_accepts_any_name_on_its_port_but_still_needs_the_token() -> None:
    guard = RequestGuard("0.0.0.0", 8391, TOKEN)
    auth = {"authorization": f"Bearer {TOKEN}"}
    guard.check_host_and_token(head(host="my-laptop.lan:8391", **auth))
    guard.check_host_and_token(head(host="[fe80::1]:8391", **auth))
    assert refusal(guard.check_host_and_token, head(host="my-laptop.lan:9999", **auth)) == 421
    assert refusal(guard.check_host_and_token, head(host="my-laptop.lan", **auth)) == 421
    assert refusal(guard.check_host_and_token, head(host="my-laptop.lan:8391")) == 401


def test_another_loopback_address_accepts_its_own_name() -> None:
    """Before: web_api.host=127.0.0.2 printed a URL whose Host it then refused with 421."""
    guard = RequestGuard("127.0.0.2", 8391, None)
    guard.check_host_and_token(head(host="127.0.0.2:8391"))
    guard.check_host_and_token(head(host="127.0.0.1:8391"))
    assert refusal(guard.check_host_and_token, head(host="evil.example:8391")) == 421


def test_loopback_accepts_the_three_loopback_names_with_the_port_only() -> None:
    guard = RequestGuard("127.0.0.1", 8391, None)
    for name in ("127.0.0.1:8391", "localhost:8391", "[::1]:8391"):
        guard.check_host_and_token(head(host=name))
    for name in ("127.0.0.1", "127.0.0.1:80", "evil.example:8391", "127.0.0.1.evil:8391"):
        assert refusal(guard.check_host_and_token, head(host=name)) == 421, name
    assert refusal(guard.check_host_and_token, head()) == 400


@pytest.mark.parametrize(
    ("headers", "accepted"),
    [
        ({"content_type": "application/json"}, True),
        ({"content_type": "Application/JSON; charset=utf-8"}, True),
        ({"x_ami_control": "1"}, True),
        ({"x_ami_control": "yes"}, False),
        ({"content_type": "text/plain"}, False),
        ({"content_type": "application/json-seq"}, False),
        ({}, False),
    ],
)
def test_a_post_must_be_json_or_carry_the_control_header(headers, accepted) -> None:
    request = head("POST", **headers)
    if accepted:
        RequestGuard.check_post(request)
    else:
        assert refusal(RequestGuard.check_post, request) == 415
