"""Finding a run's API from its control_api.json, and telling live runs from ended ones."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ami.console.client import ConsoleError
from ami.console.finding import (
    live_runs,
    logs_folder,
    process_alive,
    read_control_file,
    run_from_path,
)
from tests.console.console_parts import ended_pid, write_control_file


def test_this_process_is_alive_and_a_reaped_one_is_not() -> None:
    assert process_alive(os.getpid())
    assert not process_alive(ended_pid())


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc (Linux)")
def test_a_process_that_ended_but_was_not_reaped_counts_as_ended() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        deadline = time.monotonic() + 60
        stat = Path(f"/proc/{child.pid}/stat")
        while stat.read_text().rpartition(")")[2].split()[0] != "Z":
            assert time.monotonic() < deadline, "the child never ended"
            time.sleep(0.01)
        os.kill(child.pid, 0)  # its pid still exists: only its state tells it has ended
        assert not process_alive(child.pid)
    finally:
        child.wait(60)


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("{not json", "is not valid JSON"),
        ("[1, 2]", "expected a JSON object with a 'url'"),
        ('{"pid": 1}', "'url' must be the API's URL as text, got None"),
        ('{"url": "ftp://x:1", "pid": 1}', "speaks plain http, not ftp"),
        ('{"url": "http://127.0.0.1:9", "pid": "12"}', "'pid' must be a process id"),
    ],
)
def test_a_broken_control_file_is_refused_naming_the_file_and_the_key(
    tmp_path: Path, text: str, complaint: str
) -> None:
    path = tmp_path / "control_api.json"
    path.write_text(text)
    with pytest.raises(ConsoleError, match=r"control_api\.json") as raised:
        read_control_file(path)
    assert complaint in str(raised.value)


def test_the_file_gives_url_pid_token_and_run_folder(tmp_path: Path) -> None:
    path = write_control_file(tmp_path / "run", "http://[::1]:8391", pid=4321, token_required=True)
    run = read_control_file(path)
    assert (run.endpoint.url, run.endpoint.host, run.endpoint.port) == (
        "http://[::1]:8391",
        "::1",
        8391,
    )
    assert run.pid == 4321 and run.token_required
    assert run.run_dir == (tmp_path / "run").resolve()


def test_a_run_on_another_machine_is_not_judged_by_a_local_pid(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    write_control_file(run_dir, "http://10.1.2.3:8391", pid=ended_pid())
    assert run_from_path(run_dir).endpoint.url == "http://10.1.2.3:8391"
    write_control_file(run_dir, "http://127.0.0.1:8391", pid=ended_pid())
    with pytest.raises(ConsoleError, match="is not running: its process"):
        run_from_path(run_dir)


def test_live_runs_come_newest_first_and_folders_inside_runs_are_not_searched(
    tmp_path: Path,
) -> None:
    logs = tmp_path / "logs"
    older = write_control_file(logs / "a" / "runs" / "1", "http://127.0.0.1:8391")
    newer = write_control_file(logs / "b" / "multiruns" / "2" / "0", "http://127.0.0.1:8392")
    write_control_file(logs / "a" / "runs" / "1" / "tensorboard" / "x", "http://127.0.0.1:8393")
    write_control_file(logs / "a" / "runs" / "3", "http://127.0.0.1:8394", pid=ended_pid())
    os.utime(older, (1_000_000, 1_000_000))
    os.utime(newer, (2_000_000, 2_000_000))
    assert [run.endpoint.port for run in live_runs(logs)] == [8392, 8391]


def test_the_logs_folder_follows_ami_root() -> None:
    assert logs_folder({"AMI_ROOT": "/srv/ami"}) == Path("/srv/ami/logs")
    assert logs_folder({}) == Path("logs")
    assert logs_folder({"AMI_ROOT": ""}) == Path("logs")  # set but empty: as unset
