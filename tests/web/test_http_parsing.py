"""Request heads are parsed only when complete, within limits, with clear refusals."""

from __future__ import annotations

import json

import pytest

from ami.web.http_parsing import HttpError, head_end, parse_head, printable, render_response


def status_of(data: bytes) -> int:
    with pytest.raises(HttpError) as error:
        parse_head(data)
    return error.value.status


def test_a_head_is_complete_only_at_its_blank_line() -> None:
    request = b"GET /api/status HTTP/1.1\r\nHost: a:1\r\n\r\nbody"
    for cut in range(len(request) - 4):
        assert head_end(request[:cut], 8192) is None
    assert head_end(request, 8192) == len(request) - 4
    assert head_end(b"GET / HTTP/1.0\n\n", 8192) == 16


def test_a_head_over_the_limit_is_refused_before_it_is_complete() -> None:
    with pytest.raises(HttpError) as error:
        head_end(b"GET / HTTP/1.1\r\nX: " + b"y" * 300, 256)
    assert error.value.status == 431
    with pytest.raises(HttpError):
        head_end(b"GET / HTTP/1.1\r\nX: " + b"y" * 300 + b"\r\n\r\n", 256)


def test_a_head_is_parsed_into_method_path_and_lower_cased_headers() -> None:
    head = parse_head(
        b"POST /api/pause/?x=1 HTTP/1.1\r\nHost: 127.0.0.1:5\r\nContent-Length: 2\r\n"
        b"Accept: a\r\naccept: b\r\n\r\n"
    )
    assert (head.method, head.path, head.version) == ("POST", "/api/pause", "HTTP/1.1")
    assert head.headers["host"] == "127.0.0.1:5" and head.content_length == 2
    assert head.headers["accept"] == "a, b"


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (b"GET /\r\n\r\n", 400),
        (b"GET / HTTP/2.0\r\n\r\n", 505),
        (b"GET / HTTPS/1.1\r\n\r\n", 400),
        (b"G(T / HTTP/1.1\r\n\r\n", 400),
        (b"GET http://evil/ HTTP/1.1\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\n folded: x\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nno colon\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nX: a\x1bb\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nContent-Length: 0x10\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", 501),
    ],
)
def test_malformed_heads_are_refused_with_the_right_status(data, status) -> None:
    assert status_of(data) == status


def test_control_characters_are_escaped_for_logs() -> None:
    assert printable("a\x1b[2J\r\nb\\c\x7f") == "a\\x1b[2J\\r\\nb\\\\c\\x7f"
    assert printable("x" * 500, limit=10) == "x" * 10 + "..."


def test_a_response_is_json_and_closes_the_connection() -> None:
    data = render_response(405, {"error": "no"}, {"Allow": "POST"})
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 405 Method Not Allowed\r\n")
    assert b"\r\nContent-Type: application/json\r\n" in head
    assert b"\r\nConnection: close\r\n" in head and b"\r\nAllow: POST" in head
    assert json.loads(body) == {"error": "no"}
    assert f"Content-Length: {len(body)}".encode() in head
    assert render_response(405, {"error": "no"}, with_body=False).endswith(b"\r\n\r\n")
