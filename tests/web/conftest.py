"""A ControlAPI served by a loop like the main thread's, and clients on real sockets."""

from __future__ import annotations

import contextlib
import json
import selectors
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from ami.system import SystemControl, ThreadControl
from ami.web import ControlAPI

DEADLINE = 30.0
"""Seconds a client waits for anything: a deadlock fails, a slow machine passes."""


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def parse_response(data: bytes) -> Response:
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return Response(status, headers, body)


def read_all(sock: socket.socket, deadline: float = DEADLINE) -> bytes:
    """Everything the server sends until it closes (fails after ``deadline`` seconds)."""
    sock.settimeout(deadline)
    chunks = []
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


class Worker:
    """A background loop with safe points; ``gate`` cleared holds it between them."""

    def __init__(self, control: ThreadControl) -> None:
        self.control = control
        self.gate = threading.Event()
        self.gate.set()
        self.held = threading.Event()
        """Set once the loop is inside a held unit of work (after :meth:`hold`)."""
        self.thread = threading.Thread(target=self._loop, name=control.name, daemon=True)

    def hold(self) -> None:
        """Keep the loop inside its next unit of work, away from any safe point."""
        self.held.clear()
        self.gate.clear()

    def wait_until_held(self) -> None:
        assert self.held.wait(DEADLINE), "the worker never reached its held unit of work"

    def _loop(self) -> None:
        self.control.wait_for_start()
        try:
            while self.control.manage_loop():
                if not self.gate.is_set():
                    self.held.set()
                self.gate.wait()  # a unit of work that may last as long as the test wants
                self.control.wait(0.002)
        finally:
            self.control.mark_finished()


@dataclass
class Served:
    """A running API: its address, system control, workers and the loop's thread."""

    api: ControlAPI
    system: SystemControl
    workers: list[Worker]
    host: str
    port: int
    loop: threading.Thread
    errors: list[BaseException] = field(default_factory=list)
    stopped: threading.Event = field(default_factory=threading.Event)
    wake: tuple[socket.socket, socket.socket] = field(default_factory=socket.socketpair)

    @property
    def host_header(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    def connect(self) -> socket.socket:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.settimeout(DEADLINE)
        sock.connect((self.host, self.port))
        return sock

    def raw(self, data: bytes) -> Response:
        """Send ``data`` as it is and read the reply up to the server's close."""
        with self.connect() as sock:
            sock.sendall(data)
            return self.read(sock)

    @staticmethod
    def read(sock: socket.socket) -> Response:
        """The reply on ``sock``, read up to the server's close."""
        return parse_response(read_all(sock))

    @staticmethod
    def wait_for(condition: Callable[[], bool], what: str, deadline: float = DEADLINE) -> None:
        """Wait until ``condition()`` holds; fail naming ``what`` after ``deadline`` s."""
        end = time.monotonic() + deadline
        while not condition():
            assert time.monotonic() < end, f"timed out waiting for {what}"
            time.sleep(0.005)

    def call(
        self,
        method: str,
        path: str,
        headers: Mapping[str, str] | None = None,
        body: bytes = b"",
        json_post: bool = True,
    ) -> Response:
        """One request; a POST is sent as JSON unless ``json_post`` is False."""
        fields = {"Host": self.host_header}
        if method == "POST" and json_post:
            fields["Content-Type"] = "application/json"
        if body or method == "POST":
            fields["Content-Length"] = str(len(body))
        fields.update(headers or {})
        head = f"{method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in fields.items())
        return self.raw(head.encode("latin-1") + b"\r\n" + body)

    def request_bytes(self, method: str = "GET", path: str = "/api/status") -> bytes:
        return f"{method} {path} HTTP/1.1\r\nHost: {self.host_header}\r\n\r\n".encode()

    def notify(self) -> None:
        """Wake the loop (a thread parked); harmless once it has stopped."""
        with contextlib.suppress(OSError):
            self.wake[1].send(b"\0")

    def start_loop(self) -> None:
        """Start serving: the loop's thread becomes system control's writer."""
        self.system.transfer_to(self.loop)
        self.loop.start()

    def stop(self) -> None:
        if self.stopped.is_set():
            return
        self.stopped.set()
        self.wake[1].send(b"\0")
        if self.loop.ident is None:
            self.api.close()
        self.loop.join(DEADLINE)
        assert not self.loop.is_alive(), "the API loop did not stop"
        for worker in self.workers:
            worker.gate.set()
        self.wake[0].close()
        self.wake[1].close()


def _run_loop(served: Served) -> None:
    """The main thread's ``_serve`` loop in miniature."""
    api = served.api
    try:
        with selectors.DefaultSelector() as selector:
            selector.register(served.wake[0], selectors.EVENT_READ)
            api.register(selector)
            while not served.stopped.is_set():
                for key, events in selector.select(api.timeout(None)):
                    if key.fileobj is served.wake[0]:
                        served.wake[0].recv(64)
                    else:
                        api.on_ready(key, events)
                api.poll()
    except BaseException as error:
        served.errors.append(error)
    finally:
        if served.system.writer is threading.current_thread():
            served.system.shutdown()
        api.close()


Serve = Callable[..., Served]


@pytest.fixture
def serve() -> Iterator[Serve]:
    """``serve(workers=[...], status=..., start_loop=True, **ControlAPI kwargs)``."""
    running: list[Served] = []

    def start(
        workers: Sequence[str] = (),
        status: Callable[[SystemControl], Mapping[str, Any]] | None = None,
        start_loop: bool = True,
        **kwargs: Any,
    ) -> Served:
        kwargs.setdefault("port", 0)
        api = ControlAPI(**kwargs)
        system = SystemControl()
        loops = [Worker(system.handle_for(name)) for name in workers]

        def report() -> Mapping[str, Any]:
            if status is not None:
                return status(system)
            return {
                "status": system.state.value,
                "parked": {w.control.name: w.control.parked for w in loops},
            }

        api.open(system, report)
        host, port = api.url.removeprefix("http://").rsplit(":", 1)
        served = Served(api, system, loops, host.strip("[]"), int(port), threading.Thread())
        system.notify = served.notify  # as the main thread's waker
        served.loop = threading.Thread(target=_run_loop, args=(served,), name="api-loop")
        system.start()
        for worker in loops:
            worker.thread.start()
        running.append(served)
        if start_loop:
            served.start_loop()
        return served

    yield start
    for served in running:
        served.stop()
        assert not served.errors, served.errors
