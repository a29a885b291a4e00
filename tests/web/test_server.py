"""No client can stall the API's loop: deadlines, caps, backlog and slow readers."""

from __future__ import annotations

import selectors
import socket
import threading
import time

import pytest

pytestmark = pytest.mark.timeout(120)


def still_open(sock: socket.socket) -> bool:
    """True while the server has neither replied on nor closed ``sock``."""
    sock.setblocking(False)
    try:
        sock.recv(1, socket.MSG_PEEK)  # a reply or the end of the stream
        return False
    except BlockingIOError:
        return True
    finally:
        sock.settimeout(30)


def test_a_status_request_is_answered_while_idle_and_trickling_clients_hold_connections(
    serve,
) -> None:
    served = serve(request_timeout=60)
    idle = [served.connect() for _ in range(5)]
    trickler = served.connect()
    trickling = threading.Event()
    stop = threading.Event()

    def trickle() -> None:
        for byte in served.request_bytes():
            if stop.is_set():
                return
            trickler.send(bytes([byte]))
            trickling.set()
            stop.wait(1.0)

    thread = threading.Thread(target=trickle, daemon=True)
    thread.start()
    assert trickling.wait(30)
    served.wait_for(lambda: served.api.connection_count == 6, "six connections accepted")

    reply = served.raw(served.request_bytes())

    assert reply.status == 200 and reply.json()["status"] == "active"
    assert all(still_open(sock) for sock in idle), "answered while the idle clients wait"
    assert still_open(trickler)
    stop.set()
    thread.join(30)
    for sock in [*idle, trickler]:
        sock.close()


def test_idle_and_trickling_connections_get_408_at_the_whole_request_deadline(serve) -> None:
    served = serve(request_timeout=0.5)
    idle = [served.connect() for _ in range(5)]
    trickler = served.connect()
    answered = threading.Event()

    def trickle() -> None:
        # One byte every 0.1 s: each read is quick, the request never completes.
        request = served.request_bytes() * 1000
        for index in range(len(request)):
            if answered.is_set():
                return
            try:
                trickler.send(request[index : index + 1])
            except OSError:
                return
            time.sleep(0.1)

    thread = threading.Thread(target=trickle, daemon=True)
    thread.start()
    for sock in idle:
        reply = served.read(sock)
        assert reply.status == 408, reply
        assert "web_api.request_timeout" in reply.json()["error"]
    reply = served.read(trickler)
    answered.set()
    assert reply.status == 408, "a byte now and then does not extend the deadline"
    thread.join(30)
    served.wait_for(lambda: served.api.connection_count == 0, "the expired connections closed")
    for sock in [*idle, trickler]:
        sock.close()


def concurrent_requests(served, count: int) -> list[int]:
    """``count`` clients connect at once and send a status request; their statuses."""
    selector = selectors.DefaultSelector()
    replies: dict[socket.socket, bytearray] = {}
    for _ in range(count):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        sock.connect_ex((served.host, served.port))
        selector.register(sock, selectors.EVENT_WRITE)
        replies[sock] = bytearray()
    statuses: list[int] = []
    deadline = time.monotonic() + 60
    while len(statuses) < count:
        assert time.monotonic() < deadline, f"only {len(statuses)} of {count} answered"
        for key, events in selector.select(1.0):
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            if events & selectors.EVENT_WRITE:
                sock.sendall(served.request_bytes())
                selector.modify(sock, selectors.EVENT_READ)
                continue
            chunk = sock.recv(65536)
            if chunk:
                replies[sock] += chunk
                continue
            selector.unregister(sock)
            sock.close()
            statuses.append(int(replies[sock].split(b" ", 2)[1]))
    selector.close()
    return statuses


def test_two_hundred_concurrent_requests_are_all_answered(serve) -> None:
    served = serve()
    assert concurrent_requests(served, 200) == [200] * 200


def test_a_burst_waits_in_the_listen_backlog_while_the_loop_is_busy(serve) -> None:
    # 120 clients connect while the API cannot accept (its loop is not running): the
    # kernel completes their connections only if the backlog holds them all.
    served = serve(start_loop=False)
    clients = []
    for _ in range(120):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        sock.connect_ex((served.host, served.port))
        clients.append(sock)
    with selectors.DefaultSelector() as selector:
        for sock in clients:
            selector.register(sock, selectors.EVENT_WRITE)
        connected: set[socket.socket] = set()
        deadline = time.monotonic() + 30
        while len(connected) < len(clients):
            assert time.monotonic() < deadline, f"{len(connected)} of 120 connected"
            for key, _ in selector.select(1.0):
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0
                connected.add(sock)
                selector.unregister(sock)
    for sock in clients:
        sock.setblocking(True)
        sock.sendall(served.request_bytes())
    served.start_loop()
    statuses = [served.read(sock).status for sock in clients]
    assert statuses == [200] * 120
    for sock in clients:
        sock.close()


def test_connections_past_the_cap_wait_until_a_slot_frees(serve) -> None:
    served = serve(max_connections=4, request_timeout=60)
    idle = [served.connect() for _ in range(4)]
    served.wait_for(lambda: served.api.connection_count == 4, "four connections accepted")
    waiting = served.connect()
    waiting.sendall(served.request_bytes())
    time.sleep(0.3)  # give the loop turns in which it could wrongly serve a fifth
    assert served.api.connection_count == 4, "never more than max_connections open"
    assert still_open(waiting), "not answered while all four slots are taken"
    idle.pop().close()  # the server sees the close and frees the slot
    reply = served.read(waiting)
    assert reply.status == 200
    for sock in [*idle, waiting]:
        sock.close()


def test_a_client_that_never_reads_its_reply_does_not_block_other_clients(serve) -> None:
    big = "x" * 8_000_000  # far more than the socket buffers hold: the send must wait

    served = serve(status=lambda system: {"status": "active", "padding": big}, request_timeout=2)
    stuck = served.connect()
    stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stuck.sendall(served.request_bytes())
    served.wait_for(lambda: served.api.connection_count == 1, "the stuck client accepted")
    time.sleep(0.2)  # let the server fill the stuck client's buffers

    reply = served.raw(served.request_bytes())

    assert reply.status == 200 and len(reply.json()["padding"]) == len(big)
    served.wait_for(lambda: served.api.connection_count == 0, "the stuck client dropped")
    stuck.close()


def test_an_oversized_body_is_refused_with_413_before_it_is_sent(serve) -> None:
    served = serve(max_body_bytes=1024)
    head = (
        f"POST /api/pause HTTP/1.1\r\nHost: {served.host_header}\r\n"
        "Content-Type: application/json\r\nContent-Length: 1000000000\r\n\r\n"
    )
    reply = served.raw(head.encode())
    assert reply.status == 413
    assert "web_api.max_body_bytes" in reply.json()["error"]
    assert served.call("GET", "/api/status").json()["status"] == "active", "not paused"


def test_an_oversized_head_is_refused_with_431(serve) -> None:
    served = serve(max_header_bytes=1024)
    head = f"GET /api/status HTTP/1.1\r\nHost: {served.host_header}\r\nX-Big: {'y' * 2000}\r\n\r\n"
    reply = served.raw(head.encode())
    assert reply.status == 431
    assert "web_api.max_header_bytes" in reply.json()["error"]


def test_a_body_sent_after_100_continue_is_read(serve) -> None:
    served = serve()
    with served.connect() as sock:
        sock.sendall(
            f"POST /api/save HTTP/1.1\r\nHost: {served.host_header}\r\n"
            "Content-Type: application/json\r\nContent-Length: 2\r\n"
            "Expect: 100-continue\r\n\r\n".encode()
        )
        interim = sock.recv(25)
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(b"{}")
        reply = served.read(sock)
    assert reply.status == 200 and reply.json()["save_request"] == 1
