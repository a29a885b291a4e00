"""The API inside a real run: the main thread's loop serves it and is never held up."""

from __future__ import annotations

import json
import socket
import threading
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from runtime_parts import build_runtime

from ami.web import ControlAPI

pytestmark = [pytest.mark.usefixtures("keep_main_thread_name"), pytest.mark.timeout(90)]


def test_idle_clients_delay_neither_answers_nor_max_uptime(tmp_path: Path) -> None:
    runtime = build_runtime(tmp_path, api=True, max_uptime=3.0)
    # Clients get ten minutes for their requests: only a loop that never waits on one
    # answers the status request and stops at max_uptime while they stay idle.
    api = ControlAPI(port=0, request_timeout=600)
    runtime.main.api = api
    seen: dict[str, Any] = {}
    idle: list[socket.socket] = []
    errors: list[BaseException] = []

    def client() -> None:
        try:
            while api._server is None or runtime.main._started_at is None:
                threading.Event().wait(0.01)
            host, port = api.url.removeprefix("http://").rsplit(":", 1)
            for _ in range(5):
                idle.append(socket.create_connection((host, int(port)), timeout=30))
            with urllib.request.urlopen(api.url + "/api/status", timeout=30) as response:
                seen["status"] = json.loads(response.read())
        except BaseException as error:
            errors.append(error)

    thread = threading.Thread(target=client, name="client", daemon=True)
    thread.start()
    assert runtime.main.run() == 0
    thread.join(30)
    assert not errors, errors
    assert seen["status"]["status"] == "active"
    assert set(seen["status"]["process_threads"]) == {"main", "inference", "training", "client"}
    for sock in idle:
        sock.settimeout(30)
        assert sock.recv(1024) == b"", "closed when the run stopped"
        sock.close()
