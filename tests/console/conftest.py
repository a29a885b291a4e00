"""A real run with its API on a loopback port, and ami-console run against it.

The runtime runs on the test's own thread (the main thread's loop needs it); the
test's script, which starts ``python -m ami.console`` processes or a pseudo-terminal,
runs on a client thread meanwhile. The run's ``control_api.json`` is written here, in
the layout a run writes, so the console is tested on exactly that file.
"""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from runtime_parts import DEADLINE, Client, Runtime

from tests.console.console_parts import CONSOLE, Live, console_env, write_control_file

Console = Callable[..., subprocess.CompletedProcess[str]]
Serve = Callable[[Runtime, Callable[[Live], None]], int]


@pytest.fixture
def console(tmp_path: Path) -> Console:
    """``console(*args, cwd=..., env={...})``: one ``ami-console`` process, run to its end."""

    def run(
        *args: str, cwd: Path | None = None, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [*CONSOLE, *args],
            capture_output=True,
            text=True,
            cwd=cwd or tmp_path,
            env=console_env(tmp_path, **(env or {})),
            timeout=DEADLINE,
        )
        assert "Traceback" not in done.stderr, done.stderr
        return done

    return run


@pytest.fixture
def serve(tmp_path: Path, keep_main_thread_name: None) -> Serve:
    """``serve(runtime, script)``: run the system here, ``script(live)`` on a client thread.

    The script's ``live.run_dir`` holds a ``control_api.json`` for the run. When the
    script ends (or fails) the run is shut down; returns the run's exit code and
    re-raises the script's failure.
    """

    def start(runtime: Runtime, script: Callable[[Live], None]) -> int:
        errors: list[BaseException] = []

        def client() -> None:
            try:
                api_client = Client(runtime)
                assert runtime.main.api is not None
                url = runtime.main.api.url
                run_dir = tmp_path / "logs" / "default" / "runs" / "2030-01-01_00-00-00_1"
                write_control_file(run_dir, url, token_required=runtime.main.api.needs_token)
                script(Live(runtime, api_client, url, run_dir))
            except BaseException as error:
                errors.append(error)
            finally:  # as run_with does: stop the run from here, whatever happened
                runtime.main.system.shutdown.__wrapped__(runtime.main.system)  # type: ignore[attr-defined]

        thread = threading.Thread(target=client, name="client", daemon=True)
        thread.start()
        code = runtime.main.run()
        thread.join(DEADLINE)
        assert not thread.is_alive(), "the test's script did not finish"
        if errors:
            raise errors[0]
        return code

    return start
