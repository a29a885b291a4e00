"""The control API's routes and its defences, over real sockets on loopback."""

from __future__ import annotations

import logging
import socket
import threading
import time

import pytest

from ami.system import SystemControl
from ami.web import ControlAPI
from ami.web.api import DEFAULT_PORT

pytestmark = pytest.mark.timeout(120)

TOKEN = "correct-horse-battery-staple-42"


def test_status_pause_resume_save_and_shutdown_keep_working(serve) -> None:
    served = serve(workers=["inference", "training"])
    status = served.call("GET", "/api/status")
    assert status.status == 200 and status.json()["status"] == "active"
    assert status.headers["content-type"] == "application/json"

    asked = time.monotonic()
    paused = served.call("POST", "/api/pause").json()
    answered = time.monotonic() - asked
    assert paused["status"] == "paused" and paused["acknowledged"] is True
    assert paused["parked"] == {"inference": True, "training": True}
    assert 0 <= paused["ack_seconds"] <= answered, "measured within the request"
    assert served.call("POST", "/api/resume").json()["status"] in ("resuming", "active")
    served.wait_for(lambda: served.system.state.value == "active", "the threads left the park")
    assert served.call("POST", "/api/save").json()["save_request"] == 1
    assert served.call("POST", "/api/shutdown").json()["status"] in ("stopping", "stopped")
    assert served.system.wait_until_paused(0) is False


def test_a_pending_pause_answers_once_the_threads_park_and_other_requests_go_on(serve) -> None:
    served = serve(workers=["training"], pause_ack_timeout=60)
    (worker,) = served.workers
    worker.hold()  # the worker is inside a long unit of work: no safe point
    worker.wait_until_held()
    replies: list = []
    pause = threading.Thread(target=lambda: replies.append(served.call("POST", "/api/pause")))
    pause.start()
    served.wait_for(lambda: served.api.connection_count == 1, "the pause request pending")

    status = served.call("GET", "/api/status").json()
    assert status["parked"] == {"training": False}, "served while the pause waits"
    assert not replies, "no acknowledgement before the thread parks"
    worker.gate.set()
    pause.join(30)
    (reply,) = replies
    assert reply.json()["acknowledged"] is True and reply.json()["parked"] == {"training": True}


def test_a_pause_the_threads_do_not_reach_in_time_is_not_acknowledged(serve) -> None:
    served = serve(workers=["training"], pause_ack_timeout=0.3)
    served.workers[0].hold()
    served.workers[0].wait_until_held()
    reply = served.call("POST", "/api/pause").json()
    assert reply["acknowledged"] is False and reply["parked"] == {"training": False}
    assert reply["ack_seconds"] >= 0.3


def test_a_pause_pending_at_close_is_answered_with_the_truth(serve) -> None:
    served = serve(workers=["training"], pause_ack_timeout=60)
    served.workers[0].hold()
    served.workers[0].wait_until_held()
    replies: list = []
    pause = threading.Thread(target=lambda: replies.append(served.call("POST", "/api/pause")))
    pause.start()
    # Pending means read and acted on: the system is pausing (a connection alone may not
    # have sent its request yet when the API closes).
    served.wait_for(lambda: served.system.state.value == "pausing", "the pause request pending")
    served.stop()
    pause.join(30)
    (reply,) = replies
    assert reply.status == 200 and reply.json()["acknowledged"] is False


@pytest.mark.parametrize(
    ("headers", "what"),
    [
        ({"Content-Type": "text/plain", "Origin": "http://evil.example"}, "cross-origin text"),
        ({"Content-Type": "text/plain"}, "text/plain"),
        ({}, "no content type"),
        ({"Content-Type": "application/x-www-form-urlencoded"}, "a form"),
    ],
)
def test_a_post_a_web_page_could_send_without_preflight_is_refused(serve, headers, what) -> None:
    served = serve(workers=["inference"])
    for route in ("/api/pause", "/api/shutdown"):
        reply = served.call("POST", route, headers, json_post=False)
        assert reply.status in (403, 415), what
        assert reply.status == 403 or "Content-Type: application/json" in reply.json()["error"]
    assert served.call("GET", "/api/status").json()["status"] == "active", "nothing happened"
    assert served.workers[0].thread.is_alive()


def test_a_post_with_the_control_header_and_no_content_type_is_accepted(serve) -> None:
    served = serve()
    reply = served.call("POST", "/api/save", {"X-AMI-Control": "1"}, json_post=False)
    assert reply.status == 200 and reply.json()["save_request"] == 1


def test_a_foreign_host_is_refused_and_learns_nothing(serve) -> None:
    served = serve()
    for host in (f"evil.example:{served.port}", "127.0.0.1:1", "localhost"):
        reply = served.call("GET", "/api/status", {"Host": host})
        assert reply.status == 421, host
        assert "status" not in reply.json() and b"active" not in reply.body
    reply = served.raw(b"GET /api/status HTTP/1.0\r\n\r\n")
    assert reply.status == 400 and "Host" in reply.json()["error"]
    for host in (f"localhost:{served.port}", f"LOCALHOST:{served.port}", f"[::1]:{served.port}"):
        assert served.call("GET", "/api/status", {"Host": host}).status == 200, host


def test_a_foreign_origin_is_refused_and_the_own_origin_accepted(serve) -> None:
    served = serve()
    reply = served.call("POST", "/api/pause", {"Origin": "http://evil.example"})
    assert reply.status == 403 and "Origin" in reply.json()["error"]
    reply = served.call("GET", "/api/status", {"Origin": "null"})
    assert reply.status == 403
    own = {"Origin": f"http://127.0.0.1:{served.port}"}
    assert served.call("GET", "/api/status", own).status == 200
    assert served.call("POST", "/api/save", own).status == 200


@pytest.mark.parametrize("method", ["HEAD", "OPTIONS", "GET", "DELETE"])
def test_methods_a_route_does_not_take_get_405_json_with_allow(serve, method) -> None:
    served = serve()
    reply = served.call(method, "/api/pause", {"Origin": "http://evil.example"})
    # An OPTIONS from a page is a CORS preflight: refused, and nothing approves it.
    assert reply.status == 405 and reply.headers["allow"] == "POST"
    assert reply.headers["content-type"] == "application/json"
    assert not [name for name in reply.headers if name.startswith("access-control-")]
    if method == "HEAD":
        assert reply.body == b"" and int(reply.headers["content-length"]) > 0
    else:
        assert reply.json() == {
            "error": f"method {method} not allowed",
            "path": "/api/pause",
            "allowed": "POST",
        }
    reply = served.call("POST", "/api/status")
    assert reply.status == 405 and reply.headers["allow"] == "GET"


def test_an_unknown_route_gets_404_json(serve) -> None:
    served = serve()
    reply = served.call("GET", "/api/nothing?x=1")
    assert reply.status == 404
    assert reply.json()["path"] == "/api/nothing" and "/api/status" in reply.json()["routes"]


@pytest.mark.parametrize("length", ["abc", "-1", "1.5", "1e3", ""])
def test_a_bad_content_length_gets_400_json(serve, length) -> None:
    served = serve()
    reply = served.raw(
        f"POST /api/pause HTTP/1.1\r\nHost: {served.host_header}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n".encode()
    )
    assert reply.status == 400 and "Content-Length" in reply.json()["error"]
    assert served.call("GET", "/api/status").json()["status"] == "active"


@pytest.mark.parametrize(
    "line",
    [b"GET /api/status", b"GET  /api/status HTTP/1.1", b"GET api/status HTTP/1.1", b"\x00 / x"],
)
def test_a_malformed_request_line_gets_400_json(serve, line) -> None:
    served = serve()
    reply = served.raw(line + f"\r\nHost: {served.host_header}\r\n\r\n".encode())
    assert reply.status == 400 and "error" in reply.json()


def test_a_body_with_parameters_is_refused_rather_than_ignored(serve) -> None:
    served = serve()
    assert served.call("POST", "/api/save", body=b"{}").status == 200
    reply = served.call("POST", "/api/save", body=b'{"path": "/tmp/x"}')
    assert reply.status == 400 and "no parameters" in reply.json()["error"]
    assert served.call("POST", "/api/save", body=b"not json").status == 400


def test_control_characters_from_a_request_are_escaped_in_the_log(serve, caplog) -> None:
    caplog.set_level(logging.INFO, logger="ami.web")
    served = serve()
    reply = served.raw(
        b"GET /api/\x1b[2J\rFAKE LOG LINE HTTP/1.1\r\nHost: "
        + served.host_header.encode()
        + b"\r\n\r\n"
    )
    assert reply.status == 400
    served.wait_for(lambda: any("web API" in r.getMessage() for r in caplog.records), "a log")
    messages = [r.getMessage() for r in caplog.records if r.name.startswith("ami.web")]
    assert any("\\x1b[2J\\rFAKE LOG LINE" in m for m in messages), messages
    assert not any("\x1b" in m or "\r" in m for m in messages)


def test_with_a_token_every_request_needs_it(serve) -> None:
    served = serve(token=TOKEN)
    reply = served.call("GET", "/api/status")
    assert reply.status == 401 and reply.headers["www-authenticate"].startswith("Bearer")
    assert b"active" not in reply.body
    for wrong in ("Bearer nope", f"Basic {TOKEN}", TOKEN, f"Bearer {TOKEN}x"):
        assert served.call("GET", "/api/status", {"Authorization": wrong}).status == 401, wrong
    assert served.call("POST", "/api/pause", {"Authorization": "Bearer x"}).status == 401
    good = {"Authorization": f"Bearer {TOKEN}"}
    assert served.call("GET", "/api/status", good).json()["status"] == "active"
    assert served.call("POST", "/api/save", good).status == 200


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.5", "my-laptop.lan"])
def test_a_host_beyond_loopback_without_a_token_is_refused_before_anything_listens(host) -> None:
    with pytest.raises(ValueError, match=r"web_api\.host=.*web_api\.token"):
        ControlAPI(host=host, port=0)


def test_ipv6_loopback_works_and_prints_a_valid_url(serve) -> None:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback on this machine")
    served = serve(host="::1")
    assert served.api.url == f"http://[::1]:{served.port}"
    reply = served.call("GET", "/api/status")
    assert reply.status == 200 and reply.json()["status"] == "active"
    assert served.call("POST", "/api/save").status == 200


def test_a_taken_port_fails_at_open_with_a_clear_message() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        api = ControlAPI(port=port)
        with pytest.raises(OSError, match=rf"127\.0\.0\.1:{port}.*web_api\.port=0"):
            api.open(SystemControl(), dict)


def test_port_auto_picks_a_free_port_when_its_default_is_taken(caplog, monkeypatch) -> None:
    assert DEFAULT_PORT == 8391
    with socket.socket() as holder:
        # Another process may hold 8391 or let it go at any moment: take a port of our own
        # and make it the default.
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        taken = holder.getsockname()[1]
        monkeypatch.setattr("ami.web.api.DEFAULT_PORT", taken)
        api = ControlAPI(port="auto")
        with caplog.at_level(logging.INFO, logger="ami.web.api"):
            api.open(SystemControl(), dict)
        try:
            port = int(api.url.rsplit(":", 1)[1])
            assert port != taken
            assert f"port {taken} is taken" in caplog.text
            with socket.create_connection(("127.0.0.1", port), timeout=10):
                pass  # it listens there
        finally:
            api.close()


def test_port_auto_takes_its_default_when_free(monkeypatch) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free = probe.getsockname()[1]
    monkeypatch.setattr("ami.web.api.DEFAULT_PORT", free)
    api = ControlAPI(port="auto")
    api.open(SystemControl(), dict)
    try:
        assert api.url == f"http://127.0.0.1:{free}"
    finally:
        api.close()


@pytest.mark.parametrize("port", ["soon", -1, 70000, True, 1.5])
def test_a_port_that_is_neither_auto_nor_a_number_is_refused(port) -> None:
    with pytest.raises(ValueError, match=r"web_api\.port=.*expected auto"):
        ControlAPI(port=port)


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"request_timeout": 0}, "web_api.request_timeout"),
        ({"pause_ack_timeout": "1"}, "web_api.pause_ack_timeout"),
        ({"max_connections": 0}, "web_api.max_connections"),
        ({"max_header_bytes": 10}, "web_api.max_header_bytes"),
        ({"max_body_bytes": -1}, "web_api.max_body_bytes"),
        ({"port": 70000}, "web_api.port"),
        ({"host": ""}, "web_api.host"),
        ({"token": "short"}, "web_api.token"),
        ({"token": 1234567890123456789}, "web_api.token"),
    ],
)
def test_bad_settings_are_refused_naming_the_key(kwargs, key) -> None:
    with pytest.raises(ValueError, match=key.replace(".", r"\.")):
        ControlAPI(**kwargs)


def test_a_short_token_is_not_echoed_in_the_error() -> None:
    with pytest.raises(ValueError) as error:
        ControlAPI(token="hunter2")
    assert "hunter2" not in str(error.value)


def test_serving_starts_no_thread(serve) -> None:
    before = set(threading.enumerate())
    served = serve()
    assert served.call("GET", "/api/status").status == 200
    started = set(threading.enumerate()) - before
    assert started == {served.loop}, "only the test's own loop thread"
