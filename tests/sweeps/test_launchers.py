"""Real sweeps: `python scripts/launch.py -m ...` with each launcher, a few seconds per job."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pexpect
import pytest
from omegaconf import OmegaConf

from ami.hydra_setup import available_cores

ROOT = Path(__file__).resolve().parents[2]
LAUNCH = ROOT / "scripts" / "launch.py"

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

# Short jobs: the smoke settings, a few seconds each, the default port choice (auto).
QUICK = ("debug=smoke", "web_api.port=auto", "max_uptime=3")


def arguments(tmp_path: Path, *overrides: str) -> list[str]:
    return [
        str(LAUNCH),
        *overrides,
        f"paths.log_dir={tmp_path / 'logs'}",
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
    ]


def sweep(tmp_path: Path, *overrides: str) -> tuple[int, str]:
    done = subprocess.run(
        [sys.executable, *arguments(tmp_path, *overrides)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=200,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    return done.returncode, done.stdout + done.stderr


def record(job_dir: Path, name: str) -> dict[str, Any]:
    found: dict[str, Any] = json.loads((job_dir / name).read_text())
    return found


def summary_line(output: str, outcome: str, num: int) -> str:
    """The summary's line for job ``num`` (it starts with the outcome and ``#num``)."""
    for line in output.splitlines():
        words = line.split()
        if words[:2] == [outcome, f"#{num}"]:
            return line
    raise AssertionError(f"no '{outcome} #{num}' line in the summary:\n{output}")


def assert_completed(sweep_dir: Path, *nums: int) -> list[dict[str, Any]]:
    """Each job ``num`` completed; their control_api.json records."""
    apis = []
    for num in nums:
        job_dir = sweep_dir / str(num)
        assert record(job_dir, "outcome.json")["outcome"] == "completed", job_dir
        apis.append(record(job_dir, "control_api.json"))
    return apis


def test_basic_sweep_runs_the_job_after_a_failed_one_and_exits_1_naming_it(
    tmp_path: Path,
) -> None:
    code, output = sweep(tmp_path, "-m", *QUICK, "max_uptime=-1,3")
    sweep_dir = tmp_path / "sweep"
    assert code == 1, output
    assert record(sweep_dir / "0", "outcome.json")["outcome"] == "failed"
    assert "max_uptime=-1" in (sweep_dir / "0" / "main.log").read_text()
    assert_completed(sweep_dir, 1)  # the job after the failed one
    failed = summary_line(output, "failed", 0)
    assert "max_uptime=-1" in failed and "expected a number > 0" in failed, output
    assert f"log: {sweep_dir / '0' / 'main.log'}" in output
    summary_line(output, "completed", 1)


def test_joblib_runs_jobs_in_parallel_each_with_its_port_and_share_of_cores(
    tmp_path: Path,
) -> None:
    code, output = sweep(
        tmp_path,
        "-m",
        "hydra/launcher=parallel",
        *QUICK,
        "seed=0,1",
        "threads.torch_threads=${ami.cores_per_job:}",
    )
    sweep_dir = tmp_path / "sweep"
    assert code == 0, output
    apis = assert_completed(sweep_dir, 0, 1)
    assert apis[0]["port"] != apis[1]["port"], apis
    assert apis[0]["pid"] != apis[1]["pid"], apis
    for num in (0, 1):
        resolved = OmegaConf.load(sweep_dir / str(num) / "config.yaml")
        assert resolved.threads.torch_threads == max(1, available_cores() // 2)
    summary_line(output, "completed", 0)
    summary_line(output, "completed", 1)


def test_submitit_local_runs_the_slurm_code_path_in_local_processes(tmp_path: Path) -> None:
    code, output = sweep(tmp_path, "-m", "hydra/launcher=slurm_local", *QUICK, "seed=0,1")
    sweep_dir = tmp_path / "sweep"
    assert code == 0, output
    apis = assert_completed(sweep_dir, 0, 1)
    assert apis[0]["port"] != apis[1]["port"], apis
    assert (sweep_dir / ".submitit").is_dir()
    summary_line(output, "completed", 1)


def test_optuna_minimises_the_value_each_trial_returns(tmp_path: Path) -> None:
    # A number every run has, however busy the machine: a loss needs an optimizer step
    # within max_uptime, which a loaded machine may not give a niced training thread.
    metric = "inference/steps"
    code, output = sweep(
        tmp_path,
        "hparams_search=world_model_optuna",
        "hydra.sweeper.n_trials=2",
        *QUICK,
        f"optimized_metric={metric}",
    )
    sweep_dir = tmp_path / "sweep"
    assert code == 0, output
    assert_completed(sweep_dir, 0, 1)
    losses = [record(sweep_dir / str(num), "outcome.json")["metrics"][metric] for num in (0, 1)]
    results = OmegaConf.load(sweep_dir / "optimization_results.yaml")
    assert results.best_value == pytest.approx(min(losses))
    lrs = {record(sweep_dir / str(n), "outcome.json")["overrides"][0] for n in (0, 1)}
    assert len(lrs) == 2 and all(lr.startswith("model.trainers.dynamics.lr=") for lr in lrs)


def interrupt_sweep(tmp_path: Path, running: list[int], *overrides: str) -> tuple[int, str]:
    """Start a sweep in a pseudo-terminal, press Ctrl+C once ``running`` jobs listen."""
    sweep_dir = tmp_path / "sweep"
    child = pexpect.spawn(
        sys.executable,
        arguments(tmp_path, *overrides),
        cwd=str(ROOT),
        encoding="utf-8",
        timeout=120,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    deadline = time.monotonic() + 120
    while not all((sweep_dir / str(num) / "control_api.json").exists() for num in running):
        assert time.monotonic() < deadline, child.read_nonblocking(100_000, timeout=1)
        child.expect([pexpect.TIMEOUT, pexpect.EOF], timeout=0.2)  # keep reading its output
        assert child.isalive(), child.before
    child.sendintr()
    # Within the runs' stop time (threads.stop_timeout, 30 s) and start-up of nothing new.
    child.expect(pexpect.EOF, timeout=90)
    output = str(child.before)
    child.close()
    assert child.exitstatus is not None, output
    return child.exitstatus, output


def test_ctrl_c_stops_a_basic_sweep_and_no_further_job_starts(tmp_path: Path) -> None:
    code, output = interrupt_sweep(tmp_path, [0], "-m", *QUICK, "max_uptime=60", "seed=0,1")
    sweep_dir = tmp_path / "sweep"
    assert code == 0, output
    assert record(sweep_dir / "0", "outcome.json")["outcome"] == "interrupted"
    assert not (sweep_dir / "1").exists()
    summary_line(output, "interrupted", 0)
    assert "not started  1 of 2 jobs" in output, output


def test_ctrl_c_stops_every_parallel_job_cleanly_and_starts_no_other(tmp_path: Path) -> None:
    code, output = interrupt_sweep(
        tmp_path, [0, 1], "-m", "hydra/launcher=parallel", *QUICK, "max_uptime=60", "seed=0,1,2"
    )
    sweep_dir = tmp_path / "sweep"
    assert code == 0, output
    for num in (0, 1):
        assert record(sweep_dir / str(num), "outcome.json")["outcome"] == "interrupted"
        summary_line(output, "interrupted", num)
    assert not (sweep_dir / "2").exists()
    assert "not started  1 of 3 jobs" in output, output
