"""The console's commands, one table shared by the one-shot mode and the prompt.

One table keeps the two modes from drifting apart: the same names, help texts,
requests and summaries, whether a script or a person types the command.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ami.console import summary
from ami.console.client import ControlClient
from ami.console.summary import Result

PAUSE_EXTRA_SECONDS = 10.0
"""How much longer than other requests a pause may take: the API answers it only once
the threads have parked, or after ``web_api.pause_ack_timeout`` (1 s by default)."""


@dataclass(frozen=True)
class Command:
    """A request to the API and how its reply reads."""

    name: str
    method: str
    path: str
    help: str
    summarize: Callable[[Mapping[str, Any]], Result]
    extra_seconds: float = 0.0


COMMANDS: dict[str, Command] = {
    command.name: command
    for command in (
        Command(
            "status",
            "GET",
            "/api/status",
            "the run's state and uptime, each thread's state and progress, the "
            "collector's counts and the latest checkpoint",
            summary.status,
        ),
        Command(
            "pause",
            "POST",
            "/api/pause",
            "park the inference and training threads; answers once they sit still "
            "(exit 1 if they had not parked within web_api.pause_ack_timeout)",
            summary.pause,
            PAUSE_EXTRA_SECONDS,
        ),
        Command("resume", "POST", "/api/resume", "let a paused run go on", summary.resume),
        Command(
            "save",
            "POST",
            "/api/save",
            "write a checkpoint of the whole run without stopping it (`status` says "
            "when it is written)",
            summary.save,
        ),
        Command(
            "shutdown",
            "POST",
            "/api/shutdown",
            "stop the run cleanly: it saves its final checkpoint and exits 0",
            summary.shutdown,
        ),
    )
}


def execute(client: ControlClient, name: str, as_json: bool) -> Result:
    """Send command ``name`` and describe the reply (raw JSON when ``as_json``).

    With ``as_json`` the result's ``ok`` is still the summary's verdict, so a script
    reading the JSON gets the same exit code.

    Raises:
        ConsoleError: the request failed (see :meth:`ControlClient.call`).
    """
    command = COMMANDS[name]
    reply = client.call(command.method, command.path, client.timeout + command.extra_seconds)
    result = command.summarize(reply)
    if as_json:
        return Result(result.ok, json.dumps(reply, indent=2, sort_keys=True))
    return result


def help_text(interactive: bool) -> str:
    """Every command with its help, for ``help`` in both modes."""
    rows = [(name, command.help) for name, command in COMMANDS.items()]
    if interactive:
        rows += [
            ("help", "this list; `help <command>` for one command"),
            ("quit", "leave the console (also `exit` or Ctrl+D); the run goes on"),
        ]
        suffix = "\nadd --json to a command for the API's reply as it is; Tab completes"
    else:
        rows.append(("help", "this list"))
        suffix = ""
    width = max(len(name) for name, _ in rows)
    indent = " " * (width + 4)
    lines = [
        textwrap.fill(f"  {name:<{width}}  {text}", 88, subsequent_indent=indent)
        for name, text in rows
    ]
    return "commands:\n" + "\n".join(lines) + suffix
