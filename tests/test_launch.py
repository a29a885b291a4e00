"""The real entry point, run as a user runs it: `python scripts/launch.py ...` in a subprocess."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from omegaconf import OmegaConf
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

ROOT = Path(__file__).resolve().parents[1]
LAUNCH = ROOT / "scripts" / "launch.py"

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]


def launch(*overrides: str, cwd: Path | None = None) -> subprocess.Popen[str]:
    # Without the OpenMP wait policy this process's own ami set: the launcher chooses it.
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    env["PYTHONUNBUFFERED"] = "1"
    return subprocess.Popen(
        [sys.executable, str(LAUNCH), *overrides],
        cwd=cwd or ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )


def wait_for_api(process: subprocess.Popen[str], lines: list[str]) -> str:
    assert process.stdout is not None
    for line in process.stdout:
        lines.append(line)
        if "Control API: " in line:
            return line.split("Control API: ", 1)[1].split()[0]
    raise AssertionError("no 'Control API:' line; output:\n" + "".join(lines))


def finish(process: subprocess.Popen[str], lines: list[str], timeout: float = 120) -> str:
    out, _ = process.communicate(timeout=timeout)
    return "".join(lines) + out


def call(url: str, method: str = "GET") -> dict[str, Any]:
    request = urllib.request.Request(
        url,
        method=method,
        data=b"" if method == "POST" else None,
        headers={"Content-Type": "application/json"} if method == "POST" else {},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        body: dict[str, Any] = json.loads(response.read())
        return body


def tags(log_dir: Path) -> dict[str, list[str]]:
    events = EventAccumulator(str(log_dir), size_guidance={"scalars": 0, "images": 0})
    events.Reload()
    found: dict[str, list[str]] = events.Tags()
    return found


def test_canonical_launch_runs_learns_and_records(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    process = launch(
        "model=world_model",
        "buffer=random",
        "max_uptime=20",
        "web_api.port=auto",
        "threads.progress_every=2",
        "threads.training.log_every=2",
        f"hydra.run.dir={run_dir}",
    )
    lines: list[str] = []
    url = wait_for_api(process, lines)
    record = json.loads((run_dir / "control_api.json").read_text())
    assert record["url"] == url
    assert record["pid"] == process.pid
    assert url.startswith("http://127.0.0.1:")
    status = call(url + "/api/status")
    assert status["status"] == "active"
    assert status["process_threads"] == ["inference", "main", "training"]
    output = finish(process, lines)
    assert process.returncode == 0, output

    for name in ("config.yaml", "main.log", "inference.log", "training.log"):
        assert (run_dir / name).is_file(), name
    assert "Control API: http" in (run_dir / "main.log").read_text()
    assert "ready:" in (run_dir / "inference.log").read_text()
    assert "[training]" in (run_dir / "training.log").read_text()
    # The launcher loads ami before torch, so torch's OpenMP workers sleep at once.
    assert "OpenMP workers passive (ami's default" in (run_dir / "training.log").read_text()
    assert "[inference]" not in (run_dir / "training.log").read_text()
    assert output.count("Control API: ") == 1, "printed once"
    assert "progress: up " in (run_dir / "main.log").read_text()
    assert "loss over the last" in (run_dir / "training.log").read_text()
    # One TensorBoard run: the three threads' files side by side, no sub-runs.
    event_files = sorted(p.name.rsplit(".", 1)[1] for p in (run_dir / "tensorboard").iterdir())
    assert event_files == ["inference", "main", "training"]
    outcome = json.loads((run_dir / "outcome.json").read_text())
    assert outcome["outcome"] == "completed"
    assert outcome["exit_code"] == 0
    assert "max_uptime=20" in outcome["overrides"]
    assert outcome["metrics"]["training/dynamics/loss_final"] > 0
    assert outcome["metrics"]["inference/steps"] > 0
    assert outcome["control_api"] == url
    inference = tags(run_dir / "tensorboard")["scalars"]
    expected = {
        "inference/step_interval",
        "inference/intrinsic_reward",  # agent=curiosity is the default
        "inference/policy_value",
        "inference/world/cells_visited",
        *(f"inference/action_entropy/{name}" for name in ("move_vertical", "jump", "run")),
        *(
            f"inference/model_age/{model}/{unit}"
            for model in ("encoder", "dynamics", "policy")
            for unit in ("optimizer_steps", "seconds")
        ),
    }
    assert expected <= set(inference)
    assert "inference/model_age/decoder/seconds" not in inference, "the agent never reads it"
    training = tags(run_dir / "tensorboard")
    assert "system/rss_mb" in training["scalars"]
    composed = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"tensors": 0})
    composed.Reload()
    (text,) = composed.Tensors("config/composed/text_summary")
    config_text = text.tensor_proto.string_val[0].decode()
    assert "root_dir:" in config_text and "${" not in config_text, "resolved, as in config.yaml"
    assert "training/dynamics/loss_final" in training["scalars"]
    for trainer in ("representation", "dynamics"):
        for part in ("loss", "grad_norm", "learning_rate", "samples_per_second"):
            assert f"training/{trainer}/{part}" in training["scalars"]
    assert "training/dynamics/frame" in training["scalars"]
    assert "images/world_model" in training["images"]
    latest = (run_dir / "checkpoints" / "LATEST").read_text().strip()
    assert (run_dir / "checkpoints" / latest).is_file()


def test_ctrl_c_stops_cleanly_saves_and_the_next_run_resumes(tmp_path: Path) -> None:
    first = tmp_path / "first"
    process = launch("web_api.port=0", f"hydra.run.dir={first}")
    lines: list[str] = []
    url = wait_for_api(process, lines)
    deadline = time.monotonic() + 120  # a run that never trained saves nothing: train first
    while not all(
        trainer["runs"] >= 1
        for trainer in call(url + "/api/status")["threads"]["training"]["trainers"].values()
    ):
        assert time.monotonic() < deadline, "no training run within two minutes"
        time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    output = finish(process, lines, timeout=60)
    assert process.returncode == 0, output
    assert "interrupted; stopping" in output
    assert "stopped:" in (first / "main.log").read_text()
    assert (first / "checkpoints" / "LATEST").is_file()

    second = tmp_path / "second"
    resumed = subprocess.run(
        [
            sys.executable,
            str(LAUNCH),
            f"resume_from={first}",
            "max_uptime=2",
            "web_api=none",
            f"hydra.run.dir={second}",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "resuming from" in (second / "main.log").read_text()


def test_api_pause_resume_and_shutdown(tmp_path: Path) -> None:
    process = launch("web_api.port=0", f"hydra.run.dir={tmp_path}")
    lines: list[str] = []
    url = wait_for_api(process, lines)
    paused = call(url + "/api/pause", "POST")
    assert paused["status"] == "paused" and paused["acknowledged"] is True
    steps = paused["threads"]["inference"]["steps"]
    time.sleep(0.5)
    assert call(url + "/api/status")["threads"]["inference"]["steps"] == steps
    assert call(url + "/api/resume", "POST")["status"] in ("resuming", "active")
    time.sleep(0.5)
    assert call(url + "/api/status")["threads"]["inference"]["steps"] > steps
    assert call(url + "/api/shutdown", "POST")["status"] == "stopping"  # not stopped yet
    output = finish(process, lines, timeout=60)
    assert process.returncode == 0, output


def test_a_failing_thread_makes_the_run_exit_nonzero(tmp_path: Path) -> None:
    # A video file that exists but cannot be decoded fails on the inference thread at start.
    broken = tmp_path / "broken.avi"
    broken.write_bytes(b"not a video")
    process = launch(
        "web_api.port=0",
        "interaction=video",
        f"interaction.camera={broken}",
        f"hydra.run.dir={tmp_path / 'run'}",
    )
    output = finish(process, [], timeout=120)
    assert process.returncode != 0
    assert "thread inference failed" in output
    assert "Traceback" in (tmp_path / "run" / "inference.log").read_text()
    outcome = json.loads((tmp_path / "run" / "outcome.json").read_text())
    assert outcome["outcome"] == "failed"
    assert "thread inference failed" in outcome["reason"]


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("buffer=nope", "Available options in 'buffer'"),
        ("buffer.no_such_key=1", "no_such_key"),
        ("max_uptime=soon", "max_uptime"),
        ("seed=1.5", "seed"),
        ("threads.inference.interval=fast", "threads.inference.interval='fast'"),
        ("fabric.precision=bf16-true", "fabric.precision='bf16-true'"),
        ("interaction.action_choices=[3,3]", "interaction.action_choices=[3, 3]"),
        (
            "model.trainers.representation.encoder=no_such_model",
            "model.trainers.representation: trainer representation: trains=['no_such_model']",
        ),
        ("buffer.dtypes.image=int7", "buffer.dtypes.image='int7' is not a storage"),
        ("buffer.dtypes.image=int16", "buffer.dtypes.image=int16 cannot store"),
        ("resume_from=/no/such/run", "resume_from='/no/such/run': no checkpoint there"),
    ],
)
def test_wrong_overrides_fail_fast_naming_the_key(
    tmp_path: Path, override: str, expected: str
) -> None:
    result = subprocess.run(
        [sys.executable, str(LAUNCH), override, f"hydra.run.dir={tmp_path}"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert result.returncode != 0
    assert expected in result.stdout + result.stderr
    assert not (tmp_path / "tensorboard").exists(), "nothing started"
    if override.split("=")[0] not in COMPOSITION_ERRORS:
        # Refused by the run's own checks: the run folder says why, not only the console.
        assert expected in (tmp_path / "main.log").read_text()
        outcome = json.loads((tmp_path / "outcome.json").read_text())
        assert outcome["outcome"] == "failed"
        assert expected in outcome["reason"]


COMPOSITION_ERRORS = ("buffer", "buffer.no_such_key", "max_uptime", "seed")
"""Overrides Hydra itself refuses while composing, before any run folder exists."""


def test_sweep_and_same_second_launches_get_their_own_directories(tmp_path: Path) -> None:
    sweep = subprocess.run(
        [
            sys.executable,
            str(LAUNCH),
            "-m",
            "buffer=random,sequential",
            "max_uptime=3",
            "web_api.port=0",
            f"paths.log_dir={tmp_path}",
            "task_name=sweep",
        ],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=ROOT,
    )
    assert sweep.returncode == 0, sweep.stdout + sweep.stderr
    (sweep_dir,) = (tmp_path / "sweep" / "multiruns").iterdir()
    jobs = sorted(p.name for p in sweep_dir.iterdir() if p.is_dir() and p.name.isdigit())
    assert jobs == ["0", "1"]
    for job in jobs:
        assert (sweep_dir / job / "main.log").is_file()
        assert "inference/step_interval" in tags(sweep_dir / job / "tensorboard")["scalars"]
    targets = {OmegaConf.load(sweep_dir / job / "config.yaml").buffer._target_ for job in jobs}
    assert targets == {"ami.data.RandomReplacementBuffer", "ami.data.SequentialBuffer"}

    both = [
        launch("max_uptime=1", "web_api=none", f"paths.log_dir={tmp_path}", "task_name=twins")
        for _ in range(2)
    ]
    for process in both:
        output = finish(process, [], timeout=120)
        assert process.returncode == 0, output
    runs = list((tmp_path / "twins" / "runs").iterdir())
    assert len(runs) == 2


def test_a_web_api_token_from_the_command_line_stays_out_of_the_run_folder(tmp_path: Path) -> None:
    secret = "s3cret-token-0123456789"
    process = launch(
        f"web_api.token={secret}", "web_api.port=0", "max_uptime=2", f"hydra.run.dir={tmp_path}"
    )
    output = finish(process, [], timeout=120)
    assert process.returncode == 0, output
    assert "Bearer" in output, "the console says how to send it"
    holding = [p for p in tmp_path.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]
    assert holding == [], holding
    assert "<redacted>" in (tmp_path / ".hydra" / "overrides.yaml").read_text()
