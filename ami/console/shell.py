"""The console's prompt: the one-shot commands, plus help, Tab completion and history.

Built on :mod:`cmd` and :mod:`readline` (where Python has it; on Windows the prompt
works without completion and history). A failing command prints its one-line error and
the prompt stays: a run that is briefly busy or restarting must not end the session.
History is kept across sessions in ``$AMI_CONSOLE_HISTORY``, else
``$XDG_STATE_HOME/ami/console_history`` (``~/.local/state/ami/console_history``).
"""

from __future__ import annotations

import cmd
import os
import sys
from collections.abc import Mapping
from pathlib import Path

from typing_extensions import override

from ami.console.client import ConsoleError, ControlClient
from ami.console.commands import COMMANDS, execute, help_text
from ami.console.finding import RunApi

try:
    import readline
except ImportError:  # pragma: no cover - Windows without a readline module
    readline = None  # type: ignore[assignment]

HISTORY_VARIABLE = "AMI_CONSOLE_HISTORY"
HISTORY_LENGTH = 1000
JSON_FLAG = "--json"
LEAVING = ("quit", "exit")


def history_file(environ: Mapping[str, str] | None = None) -> Path:
    """Where the prompt keeps its history (the user's state folder, not the project)."""
    env = os.environ if environ is None else environ
    override = env.get(HISTORY_VARIABLE)
    if override:
        return Path(override).expanduser()
    state = env.get("XDG_STATE_HOME")
    base = Path(state) if state else Path.home() / ".local" / "state"
    return base / "ami" / "console_history"


class ConsoleShell(cmd.Cmd):
    """The prompt; commands come from :data:`~ami.console.commands.COMMANDS`.

    Args:
        client: Calls the run's API.
        run: The run the client talks to, when known from its ``control_api.json``.
        as_json: Print replies as JSON by default (``ami-console --json``).
    """

    def __init__(self, client: ControlClient, run: RunApi | None, as_json: bool) -> None:
        super().__init__()
        self.client = client
        self.as_json = as_json
        where = run.describe() if run is not None else client.url
        self.intro = (
            f"ami-console: {where}\n"
            "type help for the commands, quit or Ctrl+D to leave (the run goes on)"
        )
        endpoint = client.endpoint
        self.prompt = f"ami {endpoint.url.removeprefix('http://')}> "

    @override
    def onecmd(self, line: str) -> bool:
        """Run one line; True leaves the prompt (quit, exit, Ctrl+D, a shutdown)."""
        name, argument, line = self.parseline(line)
        if not line:
            return False  # an empty line repeats nothing (cmd's default would)
        if name == "EOF":
            self.stdout.write("\n")
            return True
        if name in LEAVING:
            return True
        if name == "help":
            self._help(argument or "")
            return False
        if name in COMMANDS:
            return self._command(name, argument or "")
        self._say_error(
            f"unknown command {line.split()[0]!r}: try {', '.join([*COMMANDS, 'help', 'quit'])}"
        )
        return False

    @override
    def completenames(self, text: str, *ignored: object) -> list[str]:
        """Command names for Tab at the start of a line.

        Each ends in a space, as a shell's do: Python's readline adds none itself.
        """
        return [f"{name} " for name in [*COMMANDS, "help", *LEAVING] if name.startswith(text)]

    @override
    def completedefault(self, text: str, line: str, begidx: int, endidx: int) -> list[str]:
        """Tab after a command: ``--json``, or a command name after ``help``."""
        first = line.split(maxsplit=1)[0] if line.strip() else ""
        if first == "help":
            return [f"{name} " for name in COMMANDS if name.startswith(text)]
        if first in COMMANDS and JSON_FLAG.startswith(text):
            return [f"{JSON_FLAG} "]
        return []

    @override
    def complete_help(self, text: str, line: str, begidx: int, endidx: int) -> list[str]:
        return self.completedefault(text, line, begidx, endidx)

    @override
    def preloop(self) -> None:
        if readline is None:
            return
        readline.set_completer_delims(" \t\n")  # so that --json completes as one word
        if "libedit" in (readline.__doc__ or ""):  # macOS: cmd binds GNU readline's Tab
            readline.parse_and_bind("bind ^I rl_complete")

    def _command(self, name: str, argument: str) -> bool:
        words = argument.split()
        if any(word not in (JSON_FLAG, "json") for word in words):
            self._say_error(f"{name} takes no arguments but {JSON_FLAG} (got {argument!r})")
            return False
        try:
            result = execute(self.client, name, self.as_json or bool(words))
        except ConsoleError as error:
            self._say_error(str(error))
            return False
        self.stdout.write(result.text + "\n")
        if name == "shutdown":
            self.stdout.write("the run is shutting down; leaving the console\n")
            return True
        return False

    def _help(self, argument: str) -> None:
        topic = argument.strip()
        if not topic:
            self.stdout.write(help_text(interactive=True) + "\n")
        elif topic in COMMANDS:
            self.stdout.write(f"{topic} [{JSON_FLAG}]: {COMMANDS[topic].help}\n")
        else:
            self._say_error(f"no help for {topic!r}: try {', '.join(COMMANDS)}")

    def _say_error(self, message: str) -> None:
        self.stdout.flush()
        print(f"error: {message}", file=sys.stderr, flush=True)


def run_shell(client: ControlClient, run: RunApi | None, as_json: bool) -> int:
    """The prompt until quit, Ctrl+D or a shutdown; Ctrl+C cancels the line or request."""
    shell = ConsoleShell(client, run, as_json)
    history = history_file() if readline is not None and sys.stdin.isatty() else None
    if history is not None:
        _load_history(history)
    try:
        while True:
            try:
                shell.cmdloop()
                return 0
            except KeyboardInterrupt:
                shell.intro = ""  # cmdloop shows the intro again otherwise
                shell.stdout.write("\n(interrupted; quit or Ctrl+D leaves)\n")
    finally:
        if history is not None:
            _save_history(history)


def _load_history(path: Path) -> None:
    assert readline is not None
    readline.set_history_length(HISTORY_LENGTH)
    try:
        readline.read_history_file(path)
    except FileNotFoundError:
        pass
    except OSError as error:
        print(f"warning: history not read from {path}: {error}", file=sys.stderr)


def _save_history(path: Path) -> None:
    assert readline is not None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        readline.write_history_file(path)
    except OSError as error:
        print(f"warning: history not kept in {path}: {error}", file=sys.stderr)
