"""One-shot ami-console commands against a real run, and the failures a user meets."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
from runtime_parts import GatedTrainer, build_runtime

from ami.system.control import SystemState
from ami.web import ControlAPI
from tests.console.conftest import Console, Serve
from tests.console.console_parts import (
    TOKEN,
    Live,
    ended_pid,
    free_port,
    steps_of,
    write_control_file,
)

pytestmark = pytest.mark.timeout(120)


def test_status_pause_resume_save_and_shutdown_drive_a_real_run(
    tmp_path: Path, serve: Serve, console: Console
) -> None:
    runtime = build_runtime(tmp_path, api=True, max_uptime=None, checkpoint_dir=tmp_path / "ckpt")

    def script(live: Live) -> None:
        live.client.wait_for_status(
            lambda s: steps_of(s, "training") > 0, "training took optimizer steps"
        )
        url = ["--url", live.url]
        status = console(*url, "status")
        assert status.returncode == 0, status.stderr
        lines = status.stdout.splitlines()
        assert lines[0].startswith("active, up "), status.stdout
        inference = next(line for line in lines if line.startswith("inference"))
        assert inference.split()[1] in ("running", "idle"), status.stdout
        assert re.search(r"\d+ steps; \d+ overruns", inference), status.stdout
        training = lines.index(next(line for line in lines if line.startswith("training")))
        trainer = lines[training + 1].split()
        assert trainer[:4] == ["brightness:", trainer[1], "optimizer", "steps,"], status.stdout
        assert trainer[4] == "loss" and float(trainer[5]) >= 0, status.stdout
        assert any(line.startswith("collector") and "appended" in line for line in lines)
        assert any(line.startswith("checkpoint") for line in lines), status.stdout

        paused = console(*url, "pause")
        assert paused.returncode == 0, paused.stderr
        assert paused.stdout.startswith("paused: every thread parked within "), paused.stdout
        assert live.client.status()["status"] == "paused"
        assert console(*url, "status").stdout.startswith("paused, up ")

        saved = console(*url, "save")
        assert saved.returncode == 0, saved.stderr
        assert saved.stdout.startswith("save request #1 accepted"), saved.stdout
        live.client.wait_for_status(
            lambda s: (s["checkpoint"]["save"] or {}).get("state") == "written",
            "the requested checkpoint is written",
        )
        latest = live.client.status()["checkpoint"]["latest"]
        assert f"checkpoint  latest {latest}" in console(*url, "status").stdout

        resumed = console(*url, "resume")
        assert resumed.returncode == 0, resumed.stderr
        assert resumed.stdout.startswith("resume requested: status "), resumed.stdout
        live.client.wait_for_status(lambda s: s["status"] == "active", "the run is active again")

        stopped = console(*url, "shutdown")
        assert stopped.returncode == 0, stopped.stderr
        assert stopped.stdout.startswith("shutdown requested: the run is stopping")
        assert live.runtime.main.system.requested is SystemState.STOPPED

    assert serve(runtime, script) == 0


def test_json_prints_the_api_reply_itself(tmp_path: Path, serve: Serve, console: Console) -> None:
    runtime = build_runtime(tmp_path, api=True, max_uptime=None)

    def script(live: Live) -> None:
        status = console("--url", live.url, "--json", "status")
        assert status.returncode == 0, status.stderr
        reply = json.loads(status.stdout)
        assert reply["status"] == "active"
        assert set(reply["threads"]) == {"inference", "training"}
        paused = json.loads(console("--url", live.url, "--json", "pause").stdout)
        assert paused["acknowledged"] is True and paused["status"] == "paused"

    assert serve(runtime, script) == 0


def test_a_pause_the_threads_have_not_obeyed_yet_is_reported_and_exits_1(
    tmp_path: Path, serve: Serve, console: Console
) -> None:
    trainer = GatedTrainer(hold_at_step=3)
    runtime = build_runtime(tmp_path, trainer=trainer, api=True, max_uptime=None)
    runtime.main.api = ControlAPI(port=0, pause_ack_timeout=0.2)

    def script(live: Live) -> None:
        assert trainer.entered.wait(60), "training reached the held optimizer step"
        try:
            paused = console("--url", live.url, "pause")
        finally:
            trainer.release.set()
        assert paused.returncode == 1
        assert paused.stdout.startswith("not paused yet: the threads had not all parked"), (
            paused.stdout
        )
        assert "(status: pausing)" in paused.stdout
        live.client.wait_for_status(lambda s: s["status"] == "paused", "the pause holds")
        assert console("--url", live.url, "status").stdout.startswith("paused, up ")

    assert serve(runtime, script) == 0


def test_save_in_a_run_without_checkpoints_says_nothing_will_be_written(
    tmp_path: Path, serve: Serve, console: Console
) -> None:
    runtime = build_runtime(tmp_path, api=True, max_uptime=None)  # no checkpoint folder

    def script(live: Live) -> None:
        saved = console("--url", live.url, "save")
        assert saved.returncode == 1
        assert "keeps no checkpoints" in saved.stdout and "nothing will be written" in saved.stdout

    assert serve(runtime, script) == 0


def test_run_finds_the_url_in_the_run_folders_control_api_json(
    tmp_path: Path, serve: Serve, console: Console
) -> None:
    runtime = build_runtime(tmp_path, api=True, max_uptime=None)

    def script(live: Live) -> None:
        by_folder = console("--run", str(live.run_dir), "status")
        assert by_folder.returncode == 0, by_folder.stderr
        assert by_folder.stdout.startswith("active, up ")
        by_file = console("--run", str(live.run_dir / "control_api.json"), "--json", "status")
        assert json.loads(by_file.stdout)["status"] == "active"

    assert serve(runtime, script) == 0


def test_without_url_or_run_the_newest_live_run_is_picked_and_named(
    tmp_path: Path, serve: Serve, console: Console
) -> None:
    runtime = build_runtime(tmp_path, api=True, max_uptime=None)

    def script(live: Live) -> None:
        runs = live.run_dir.parent
        older = write_control_file(runs / "2029-12-31_00-00-00_2", live.url)
        ended = write_control_file(
            runs / "2031-01-01_00-00-00_3", "http://127.0.0.1:9", ended_pid()
        )
        (runs / "2032-01-01_00-00-00_4").mkdir()
        (runs / "2032-01-01_00-00-00_4" / "control_api.json").write_text("{not json")
        live_file = live.run_dir / "control_api.json"
        for number, path in enumerate([older, live_file, ended]):
            os.utime(path, (1_000_000 + number, 1_000_000 + number))

        picked = console("status", cwd=tmp_path)
        assert picked.returncode == 0, picked.stderr
        named = "logs/default/runs/2030-01-01_00-00-00_1"
        assert f"the newest live run: {named} ({live.url}, pid {os.getpid()})" in picked.stderr
        assert "1 other live run(s), pick one with --run: logs/default/runs/2029" in picked.stderr
        assert picked.stdout.startswith("active, up ")

        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        by_root = console("status", cwd=elsewhere, env={"AMI_ROOT": str(tmp_path)})
        assert by_root.returncode == 0, by_root.stderr
        assert "2030-01-01_00-00-00_1" in by_root.stderr

    assert serve(runtime, script) == 0


def test_a_run_with_a_token_needs_it_and_refuses_a_wrong_one(
    tmp_path: Path, serve: Serve, console: Console
) -> None:
    runtime = build_runtime(tmp_path, api=True, max_uptime=None)
    runtime.main.api = ControlAPI(port=0, token=TOKEN)

    def script(live: Live) -> None:
        missing = console("--url", live.url, "status")
        assert missing.returncode == 1
        assert missing.stderr.strip() == (
            f"ami-console: the run at {live.url} needs a token (401 unauthorized): pass "
            "--token <web_api.token> or set AMI_API_TOKEN"
        )
        wrong = console("--url", live.url, "--token", "x" * 20, "status")
        assert wrong.returncode == 1
        assert f"the run at {live.url} refused the token (401 unauthorized)" in wrong.stderr

        assert console("--url", live.url, "--token", TOKEN, "status").returncode == 0
        by_env = console("--url", live.url, "status", env={"AMI_API_TOKEN": TOKEN})
        assert by_env.returncode == 0 and by_env.stdout.startswith("active, up ")

        # The run's file says a token is needed: no request is sent without one.
        unsent = console("--run", str(live.run_dir), "status")
        assert unsent.returncode == 1
        assert "control_api.json says token_required" in unsent.stderr
        assert (
            console("--run", str(live.run_dir), "status", env={"AMI_API_TOKEN": TOKEN}).returncode
            == 0
        )

    assert serve(runtime, script) == 0


def test_a_url_nobody_listens_on_exits_1_naming_the_url_and_the_cause(console: Console) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    done = console("--url", url, "status")
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.strip() == (
        f"ami-console: no run answers at {url} (connection refused): is it still running?"
    )


def test_a_server_that_never_answers_times_out_with_a_message(console: Console) -> None:
    with socket.socket() as silent:  # listens (the kernel accepts) but never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        done = console("--url", url, "--timeout", "0.5", "status")
    assert done.returncode == 1
    assert f"no answer from {url} within 0.5 s" in done.stderr
    assert "--timeout waits longer" in done.stderr


class _NotTheApi(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.end_headers()
        self.wfile.write(b"<html>some other server</html>")

    def log_message(self, *args: object) -> None:
        pass


def test_a_server_that_is_not_the_control_api_is_named_as_such(console: Console) -> None:
    server = HTTPServer(("127.0.0.1", 0), _NotTheApi)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        done = console("--url", url, "status")
    finally:
        server.shutdown()
        server.server_close()
    assert done.returncode == 1
    assert f"{url} answered GET /api/status with something other than the control API's JSON" in (
        done.stderr
    )


def test_run_with_a_folder_without_control_api_json_is_a_clear_error(
    tmp_path: Path, console: Console
) -> None:
    run_dir = tmp_path / "logs" / "default" / "runs" / "2030-01-01_00-00-00_1"
    run_dir.mkdir(parents=True)
    done = console("--run", str(run_dir), "status")
    assert done.returncode == 1
    assert done.stderr.strip() == (
        "ami-console: no control_api.json in logs/default/runs/2030-01-01_00-00-00_1: not a "
        "run folder, a run whose API has not opened yet, or one started with web_api=none"
    )
    missing = console("--run", str(tmp_path / "nowhere"), "status")
    assert missing.returncode == 1
    assert "--run" in missing.stderr and "nowhere: no such run folder" in missing.stderr


def test_run_with_a_multirun_folder_points_at_its_jobs(tmp_path: Path, console: Console) -> None:
    sweep = tmp_path / "logs" / "default" / "multiruns" / "2030-01-01_00-00-00_1"
    for job in ("0", "1"):
        write_control_file(sweep / job, "http://127.0.0.1:9")
    done = console("--run", str(sweep), "status")
    assert done.returncode == 1
    assert "a multirun? pass one job's folder, e.g. --run logs/default/multiruns/" in done.stderr
    assert "(2 jobs have one)" in done.stderr


def test_run_whose_process_has_ended_is_reported_not_running(
    tmp_path: Path, console: Console
) -> None:
    run_dir = tmp_path / "run"
    write_control_file(run_dir, f"http://127.0.0.1:{free_port()}", pid=(pid := ended_pid()))
    (run_dir / "outcome.json").write_text(
        json.dumps({"outcome": "completed", "exit_code": 0, "reason": None})
    )
    done = console("--run", str(run_dir), "status")
    assert done.returncode == 1
    assert f"ami-console: run run is not running: its process {pid} has ended (completed)" in (
        done.stderr
    )


def test_no_live_run_under_logs_is_a_clear_error(tmp_path: Path, console: Console) -> None:
    nothing = console("status", cwd=tmp_path)
    assert nothing.returncode == 1
    assert "there is no logs folder here" in nothing.stderr
    write_control_file(
        tmp_path / "logs" / "default" / "runs" / "a", "http://127.0.0.1:9", ended_pid()
    )
    stale = console("status", cwd=tmp_path)
    assert stale.returncode == 1
    assert (
        "no running run under logs: none of its 1 control_api.json files names a live process"
        in (stale.stderr)
    )


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        (["frobnicate"], "invalid choice: 'frobnicate'"),
        (["--url", "http://127.0.0.1:9", "--run", "x", "status"], "not allowed with argument"),
        (["--url", "127.0.0.1", "status"], "host and port needed"),
        (["--url", "https://127.0.0.1:9", "status"], "speaks plain http, not https"),
        (["--timeout", "0", "status"], "expected seconds > 0"),
    ],
)
def test_usage_errors_exit_2_saying_what_is_accepted(
    console: Console, args: list[str], complaint: str
) -> None:
    done = console(*args)
    assert done.returncode == 2
    assert complaint in done.stderr


def test_help_lists_every_command_without_a_run(console: Console) -> None:
    done = console("help")
    assert done.returncode == 0
    for name in ("status", "pause", "resume", "save", "shutdown"):
        assert f"\n  {name} " in done.stdout


def test_a_run_on_the_ipv6_loopback_is_reached_by_url_and_by_run_folder(
    tmp_path: Path, serve: Serve, console: Console
) -> None:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback on this machine")
    runtime = build_runtime(tmp_path, api=True, max_uptime=None)
    runtime.main.api = ControlAPI(host="::1", port=0)

    def script(live: Live) -> None:
        assert live.url.startswith("http://[::1]:")
        assert console("--url", live.url, "status").stdout.startswith("active, up ")
        assert console("--run", str(live.run_dir), "status").stdout.startswith("active, up ")

    assert serve(runtime, script) == 0


def test_the_installed_script_runs_the_console() -> None:
    script = Path(sys.executable).parent / "ami-console"
    if not script.exists():
        pytest.skip("the ami-console script is not installed: pip install -e .")
    done = subprocess.run(
        [str(script), "--url", f"http://127.0.0.1:{free_port()}", "status"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert "no run answers at http://127.0.0.1:" in done.stderr


def test_a_token_a_header_cannot_carry_is_refused_before_anything_is_sent(
    console: Console,
) -> None:
    with socket.socket() as listener:  # would take the request if one were sent
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        done = console("--url", url, "--timeout", "30", "status", env={"AMI_API_TOKEN": "a b"})
    assert done.returncode == 1
    assert "AMI_API_TOKEN: a token is printable ASCII without spaces" in done.stderr
