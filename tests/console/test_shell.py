"""The interactive prompt, driven through a pseudo-terminal as a person would use it."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from runtime_parts import build_runtime

from ami.console.shell import history_file
from ami.system.control import SystemState
from tests.console.conftest import Serve
from tests.console.console_parts import CONSOLE, Live, console_env, free_port

pexpect = pytest.importorskip("pexpect")

pytestmark = pytest.mark.timeout(120)

PROMPT = re.compile(r"ami 127\.0\.0\.1:\d+> ")
TIMEOUT = 30
UP_ARROW = "\x1b[A"


class Prompt:
    """One console process in a pseudo-terminal."""

    def __init__(self, tmp_path: Path, *args: str) -> None:
        self.child = pexpect.spawn(
            CONSOLE[0],
            [*CONSOLE[1:], *args],
            cwd=str(tmp_path),
            env=console_env(tmp_path),
            encoding="utf-8",
            timeout=TIMEOUT,
            dimensions=(40, 200),
        )
        self.expect(PROMPT)

    def expect(self, pattern: str | re.Pattern[str]) -> str:
        """Wait for ``pattern`` (text, or a compiled regex) and return all output before it."""
        if isinstance(pattern, str):
            self.child.expect_exact(pattern)
        else:
            self.child.expect(pattern)
        return str(self.child.before)

    def run(self, line: str, answer: str) -> str:
        """Type ``line``, wait for ``answer`` and then the next prompt."""
        self.child.sendline(line)
        before = self.expect(answer)
        self.expect(PROMPT)
        return before

    def leave(self, line: str = "quit") -> int:
        self.child.sendline(line)
        self.child.expect(pexpect.EOF)
        self.child.close()
        return int(self.child.exitstatus)

    def close(self) -> None:
        if self.child.isalive():
            self.child.terminate(force=True)


@pytest.fixture
def prompts(tmp_path: Path) -> Iterator[list[Prompt]]:
    opened: list[Prompt] = []
    yield opened
    for prompt in opened:
        prompt.close()


def open_prompt(prompts: list[Prompt], tmp_path: Path, *args: str) -> Prompt:
    prompt = Prompt(tmp_path, *args)
    prompts.append(prompt)
    return prompt


def test_the_prompt_runs_commands_explains_them_and_survives_a_bad_one(
    tmp_path: Path, serve: Serve, prompts: list[Prompt]
) -> None:
    runtime = build_runtime(tmp_path, api=True, max_uptime=None)

    def script(live: Live) -> None:
        prompt = open_prompt(prompts, tmp_path, "--url", live.url)
        prompt.run("status", "active, up ")
        prompt.run("frobnicate", "error: unknown command 'frobnicate': try status, pause")
        prompt.run("help", "leave the console (also `exit` or Ctrl+D)")
        prompt.run("pause", "paused: every thread parked within ")
        assert live.client.status()["status"] == "paused"
        prompt.run("status", "paused, up ")
        prompt.run("resume", "resume requested: status ")
        prompt.run("status --json", '"status": ')
        assert prompt.leave() == 0
        assert live.runtime.main.system.requested is SystemState.ACTIVE, "quit leaves the run on"

    assert serve(runtime, script) == 0


def test_shutdown_at_the_prompt_stops_the_run_and_leaves(
    tmp_path: Path, serve: Serve, prompts: list[Prompt]
) -> None:
    runtime = build_runtime(tmp_path, api=True, max_uptime=None)

    def script(live: Live) -> None:
        prompt = open_prompt(prompts, tmp_path, "--run", str(live.run_dir))
        prompt.child.sendline("shutdown")
        prompt.expect("shutdown requested: the run is stopping")
        prompt.expect("the run is shutting down; leaving the console")
        prompt.child.expect(pexpect.EOF)
        prompt.child.close()
        assert prompt.child.exitstatus == 0
        assert live.runtime.main.system.requested is SystemState.STOPPED

    assert serve(runtime, script) == 0


def test_an_unreachable_run_is_an_error_of_one_command_not_the_end_of_the_prompt(
    tmp_path: Path, prompts: list[Prompt]
) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    prompt = open_prompt(prompts, tmp_path, "--url", url)
    prompt.run("status", f"error: no run answers at {url} (connection refused)")
    prompt.run("help pause", "pause [--json]: park the inference and training threads")
    prompt.child.sendintr()  # Ctrl+C at the prompt: a new line, not the end
    prompt.expect("(interrupted; quit or Ctrl+D leaves)")
    prompt.expect(PROMPT)
    prompt.child.sendeof()  # Ctrl+D leaves
    prompt.child.expect(pexpect.EOF)
    prompt.child.close()
    assert prompt.child.exitstatus == 0


def test_the_up_arrow_recalls_a_command_of_the_previous_session(
    tmp_path: Path, prompts: list[Prompt]
) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    first = open_prompt(prompts, tmp_path, "--url", url)
    first.run("help save", "save [--json]: write a checkpoint")
    assert first.leave("exit") == 0
    history = (tmp_path / "console_history").read_text()
    assert "help save" in history

    second = open_prompt(prompts, tmp_path, "--url", url)
    second.child.send(UP_ARROW + UP_ARROW + "\r")  # past "exit", the session's last line
    second.expect("save [--json]: write a checkpoint")
    assert second.leave() == 0


def test_tab_completes_command_names_and_the_json_flag(
    tmp_path: Path, prompts: list[Prompt]
) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    prompt = open_prompt(prompts, tmp_path, "--url", url)
    prompt.child.send("hel\tshu\t\r")  # -> "help shutdown"
    prompt.expect("shutdown [--json]: stop the run cleanly")
    prompt.expect(PROMPT)
    prompt.child.send("status --j\t")
    prompt.expect("status --json")
    prompt.child.send("\r")
    prompt.expect(f"error: no run answers at {url}")
    assert prompt.leave() == 0


def test_history_lives_in_the_users_state_folder_unless_told_otherwise(tmp_path: Path) -> None:
    assert history_file({}) == Path.home() / ".local/state/ami/console_history"
    assert history_file({"XDG_STATE_HOME": "/state"}) == Path("/state/ami/console_history")
    chosen = tmp_path / "h"
    assert history_file({"AMI_CONSOLE_HISTORY": str(chosen), "XDG_STATE_HOME": "/s"}) == chosen
