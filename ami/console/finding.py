"""Which run to talk to: a run folder's ``control_api.json``, or the newest live run.

A run writes ``<run dir>/control_api.json`` (url, host, port, pid, token_required,
run_dir) once its API listens, and leaves it there when it ends. A file whose process
has ended therefore names a URL that nobody, or by now another run, listens on: such
a run is reported as not running rather than called, so the console never shows the
status of a different run than the one asked for.
"""

from __future__ import annotations

import importlib
import ipaddress
import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ami.console.client import ConsoleError, Endpoint, parse_url

CONTROL_FILE = "control_api.json"
OUTCOME_FILE = "outcome.json"
_SKIPPED_FOLDERS = frozenset({"tensorboard", "checkpoints", ".hydra"})
"""Folders of a run that never hold a run of their own: not searched, which keeps the
search quick in a logs folder of many runs."""


@dataclass(frozen=True)
class RunApi:
    """A run's API as its ``control_api.json`` describes it."""

    endpoint: Endpoint
    pid: int | None
    token_required: bool
    run_dir: Path
    file: Path

    def describe(self) -> str:
        """One line naming the run, for "which run did it pick?"."""
        pid = f", pid {self.pid}" if self.pid is not None else ""
        return f"{_shown(self.run_dir)} ({self.endpoint.url}{pid})"


def read_control_file(path: Path) -> RunApi:
    """Parse a ``control_api.json``.

    Raises:
        ConsoleError: missing, unreadable, not JSON, or a key missing or of the wrong
            type; naming the file and the key.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConsoleError(_missing_file_message(path)) from None
    except OSError as error:
        raise ConsoleError(f"cannot read {path}: {error.strerror or error}") from None
    try:
        data = json.loads(text)
    except ValueError as error:
        raise ConsoleError(f"{path} is not valid JSON ({error})") from None
    if not isinstance(data, dict):
        raise ConsoleError(f"{path}: expected a JSON object with a 'url', got {text[:80]!r}")
    url = data.get("url")
    if not isinstance(url, str):
        raise ConsoleError(f"{path}: 'url' must be the API's URL as text, got {url!r}")
    try:
        endpoint = parse_url(url)
    except ValueError as error:
        raise ConsoleError(f"{path}: {error}") from None
    pid = data.get("pid")
    if pid is not None and (isinstance(pid, bool) or not isinstance(pid, int) or pid <= 0):
        raise ConsoleError(f"{path}: 'pid' must be a process id (a whole number > 0), got {pid!r}")
    run_dir = data.get("run_dir")
    return RunApi(
        endpoint=endpoint,
        pid=pid,
        token_required=data.get("token_required") is True,
        run_dir=Path(run_dir) if isinstance(run_dir, str) and run_dir else path.parent,
        file=path,
    )


def run_from_path(path: Path) -> RunApi:
    """The run that ``--run`` names: a run folder, or its ``control_api.json`` itself.

    Raises:
        ConsoleError: no such folder or file; or the run's process has ended (only
            checked where the API is on this machine, the only place its pid means
            anything), naming its outcome when ``outcome.json`` records one.
    """
    if not path.exists():
        raise ConsoleError(f"--run {path}: no such run folder")
    file = path / CONTROL_FILE if path.is_dir() else path
    run = read_control_file(file)
    if run.pid is not None and is_local(run.endpoint.host) and not process_alive(run.pid):
        raise ConsoleError(
            f"run {_shown(file.parent)} is not running: its process {run.pid} has ended"
            f"{_outcome_note(file.parent)} (its API was at {run.endpoint.url})"
        )
    return run


def logs_folder(environ: Mapping[str, str] | None = None) -> Path:
    """Where runs live: ``$AMI_ROOT/logs`` (as ``scripts/launch.py`` sets it), else ``./logs``."""
    root = (os.environ if environ is None else environ).get("AMI_ROOT")
    return Path(root) / "logs" if root else Path("logs")


def live_runs(logs: Path) -> list[RunApi]:
    """Runs under ``logs`` whose ``control_api.json`` names a live process, newest first.

    Newest means the most recently written file: a run writes it once its API listens.
    Files that cannot be read are skipped here; ``--run`` reports what is wrong with one.
    """
    found: list[tuple[float, str, RunApi]] = []
    for file in _control_files(logs):
        try:
            run = read_control_file(file)
            written = file.stat().st_mtime
        except (ConsoleError, OSError):
            continue
        if run.pid is not None and process_alive(run.pid):
            found.append((written, str(file), run))
    found.sort(key=lambda item: (item[0], item[1]), reverse=True)
    return [run for _, _, run in found]


def newest_live_run(logs: Path) -> tuple[RunApi, list[RunApi]]:
    """The newest live run under ``logs``, and the other live ones.

    Raises:
        ConsoleError: no logs folder, or no live run in it; saying what was found.
    """
    if not logs.is_dir():
        raise ConsoleError(
            f"no run to talk to: there is no {_shown(logs)} folder here (runs live in "
            "<project>/logs; run from the project folder, set AMI_ROOT, or pass --url or "
            "--run <run dir>)"
        )
    runs = live_runs(logs)
    if not runs:
        count = sum(1 for _ in _control_files(logs))
        found = (
            f"none of its {count} {CONTROL_FILE} files names a live process"
            if count
            else f"it holds no {CONTROL_FILE} (a run writes one once its API listens)"
        )
        raise ConsoleError(
            f"no running run under {_shown(logs)}: {found}; start one with "
            "python scripts/launch.py, or pass --url or --run <run dir>"
        )
    return runs[0], runs[1:]


def is_local(host: str) -> bool:
    """Whether the API's host is this machine's loopback, where the file's pid is ours to check."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` exists (a zombie, which has ended, does not count)."""
    if os.name == "nt":  # os.kill(pid, 0) would terminate the process on Windows
        psutil: Any = importlib.import_module("psutil")
        return bool(psutil.pid_exists(pid))
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: it exists
    except OSError:
        return False
    return not _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    """A killed run not yet reaped by its parent is a zombie: ended, though its pid exists."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False  # no /proc (macOS) or gone: nothing more to learn
    state = stat.rpartition(")")[2].split()
    return bool(state) and state[0] in ("Z", "X")


def _control_files(logs: Path) -> Iterator[Path]:
    for folder, subfolders, files in os.walk(logs):
        subfolders[:] = [name for name in subfolders if name not in _SKIPPED_FOLDERS]
        if CONTROL_FILE in files:
            yield Path(folder) / CONTROL_FILE


def _missing_file_message(path: Path) -> str:
    folder = path.parent
    files = folder.glob(f"*/{CONTROL_FILE}") if folder.is_dir() else iter(())
    jobs = sorted(_shown(file.parent) for file in files)
    if jobs:
        return (
            f"no {CONTROL_FILE} in {_shown(folder)}: a multirun? pass one job's folder, "
            f"e.g. --run {jobs[0]} ({len(jobs)} jobs have one)"
        )
    return (
        f"no {CONTROL_FILE} in {_shown(folder)}: not a run folder, a run whose API has not "
        "opened yet, or one started with web_api=none"
    )


def _outcome_note(run_dir: Path) -> str:
    try:
        outcome = json.loads((run_dir / OUTCOME_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return ""
    if not isinstance(outcome, dict) or not isinstance(outcome.get("outcome"), str):
        return ""
    reason = outcome.get("reason")
    because = f": {reason}" if isinstance(reason, str) and reason else ""
    return f" ({outcome['outcome']}{because})"


def _shown(path: Path) -> str:
    """``path`` relative to the working folder where it lies below it, else as given."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except (ValueError, OSError):
        return str(path)
