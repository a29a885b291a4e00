"""Parts of the console tests: a console's environment, a run's control_api.json, ports."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runtime_parts import DEADLINE, Client, Runtime

CONSOLE = [sys.executable, "-m", "ami.console"]
TOKEN = "console-test-token-0123456789"


def console_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The environment of a console process: nothing of the user's reaches it."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("AMI_API_TOKEN", "AMI_ROOT", "http_proxy", "HTTP_PROXY")
    }
    env.update(
        AMI_CONSOLE_HISTORY=str(tmp_path / "console_history"),
        INPUTRC=os.devnull,  # no key bindings of the user's
        TERM="dumb",  # no colours or bracketed paste in what a test reads
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


def write_control_file(
    run_dir: Path, url: str, pid: int | None = None, token_required: bool = False
) -> Path:
    """``<run dir>/control_api.json`` as a run writes it once its API listens."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / "control_api.json"
    path.write_text(
        json.dumps(
            {
                "url": url,
                "host": host.strip("[]"),
                "port": int(port),
                "pid": os.getpid() if pid is None else pid,
                "token_required": token_required,
                "run_dir": str(run_dir.resolve()),
            }
        )
    )
    return path


def ended_pid() -> int:
    """The id of a process that has ended and been reaped: no process has it now."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait(DEADLINE)
    return child.pid


def free_port() -> int:
    """A loopback port nothing listens on (bound once, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Live:
    """A running system as a test's script sees it."""

    runtime: Runtime
    client: Client
    url: str
    run_dir: Path


def steps_of(status: dict[str, Any], thread: str) -> int:
    return int(status["threads"][thread]["steps"])
