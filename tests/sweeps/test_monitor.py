"""The sweep's own process: its launcher's kind, its job count, Ctrl+C, stops between batches."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf, open_dict

import ami.hydra_setup  # noqa: F401  (the launch_schema config)
from ami.sweeps import SweepInterrupted
from ami.sweeps.monitor import (
    check_objective_name,
    expected_jobs,
    launcher_kind,
    restore_signals,
    stop_between_batches,
    take_signals,
)
from ami.sweeps.state import JOBS_TAKE_SIGINT_ENV, Sweep
from ami.sweeps.stop import request_stop, stop_reason

JOBLIB = "hydra_plugins.hydra_joblib_launcher"
SUBMITIT = "hydra_plugins.hydra_submitit_launcher"
CONF = Path(__file__).resolve().parents[2] / "conf"


def composed(*overrides: str) -> DictConfig:
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("launch", overrides=list(overrides), return_hydra_config=True)


@pytest.fixture
def signals_back() -> Iterator[None]:
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)
    os.environ.pop(JOBS_TAKE_SIGINT_ENV, None)


@pytest.mark.parametrize(
    ("target", "kind"),
    [
        ("hydra._internal.core_plugins.basic_launcher.BasicLauncher", "in_process"),
        (f"{JOBLIB}.joblib_launcher.JoblibLauncher", "local_processes"),
        (f"{SUBMITIT}.submitit_launcher.LocalLauncher", "local_processes"),
        (f"{SUBMITIT}.submitit_launcher.SlurmLauncher", "slurm"),
        ("hydra_plugins.hydra_ray_launcher.ray_aws_launcher.RayAWSLauncher", "other"),
    ],
)
def test_each_launcher_is_known_by_where_its_jobs_run(target: str, kind: str) -> None:
    assert launcher_kind(target) == kind


@pytest.mark.parametrize(
    ("launcher", "kind"),
    [("parallel", "local_processes"), ("slurm", "slurm"), ("slurm_local", "local_processes")],
)
def test_the_shipped_launcher_configs_build_the_plugins_launchers(launcher: str, kind: str) -> None:
    cfg = composed(f"hydra/launcher={launcher}")
    assert launcher_kind(cfg.hydra.launcher._target_) == kind


def test_the_job_count_of_a_grid_sweep_is_its_product() -> None:
    cfg = composed()  # compose() refuses sweeps: the command line's overrides are set below
    with open_dict(cfg):
        cfg.hydra.overrides.task = ["seed=0,1,2", "buffer=random,sequential", "max_uptime=3"]
    assert expected_jobs(cfg) == 6


def test_the_job_count_of_an_optuna_search_is_its_trials() -> None:
    cfg = composed("hparams_search=world_model_optuna", "hydra.sweeper.n_trials=7")
    assert expected_jobs(cfg) == 7
    assert cfg.optimized_metric == "training/dynamics/loss_final"


def test_an_objective_no_run_writes_is_refused_naming_the_choices() -> None:
    check_objective_name("training/dynamics/loss_final")
    check_objective_name("inference/steps_per_second")
    check_objective_name("eval/prediction_vs_copy_final")
    check_objective_name("eval/probe_r2/position_final")
    with pytest.raises(SystemExit, match=r"'training/dynamics/loss_fnal'.*loss_best"):
        check_objective_name("training/dynamics/loss_fnal")
    with pytest.raises(SystemExit, match=r"'eval/prediction_vs_copy'"):
        check_objective_name("eval/prediction_vs_copy")  # charted, but not an end-of-run number


@pytest.mark.usefixtures("signals_back")
def test_with_local_job_processes_the_sweep_process_leaves_ctrl_c_to_them(tmp_path: Path) -> None:
    sweep = Sweep(sweep_dir=tmp_path, pid=os.getpid(), launcher="local_processes")
    take_signals(sweep)
    assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN
    assert os.environ[JOBS_TAKE_SIGINT_ENV] == "1"
    os.kill(os.getpid(), signal.SIGTERM)
    assert stop_reason(tmp_path) == "SIGTERM to the sweep's process"
    restore_signals(sweep)
    assert signal.getsignal(signal.SIGINT) == signal.default_int_handler
    assert JOBS_TAKE_SIGINT_ENV not in os.environ


@pytest.mark.usefixtures("signals_back")
def test_with_slurm_ctrl_c_writes_the_stop_file_and_a_second_stops_waiting(tmp_path: Path) -> None:
    sweep = Sweep(sweep_dir=tmp_path, pid=os.getpid(), launcher="slurm")
    take_signals(sweep)
    os.kill(os.getpid(), signal.SIGINT)
    assert stop_reason(tmp_path) == "SIGINT to the sweep's process"
    with pytest.raises(KeyboardInterrupt):
        os.kill(os.getpid(), signal.SIGINT)


class FakeLauncher:
    def __init__(self, sweep_dir: Path) -> None:
        self.config = OmegaConf.create({"hydra": {"sweep": {"dir": str(sweep_dir)}}})
        self.batches: list[Any] = []

    def launch(self, job_overrides: Any, initial_job_idx: int) -> list[str]:
        self.batches.append(job_overrides)
        return ["ran"]


def test_a_stopped_sweep_launches_no_further_batch(tmp_path: Path) -> None:
    stop_between_batches(f"{__name__}.FakeLauncher")
    stop_between_batches(f"{__name__}.FakeLauncher")  # idempotent: wrapped once
    launcher = FakeLauncher(tmp_path)
    assert launcher.launch([["seed=0"]], 0) == ["ran"]
    request_stop(tmp_path, "stop")
    with pytest.raises(SweepInterrupted, match="stopped"):
        launcher.launch([["seed=1"]], 1)
    assert launcher.batches == [[["seed=0"]]]
