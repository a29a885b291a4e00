"""${ami.cores_per_job:}: each parallel job's share of the cores, torch's default otherwise."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, open_dict

from ami.hydra_setup import available_cores, cores_per_job

CONF = Path(__file__).resolve().parents[2] / "conf"


@pytest.fixture
def under_hydra() -> Iterator[None]:
    saved = HydraConfig.instance().cfg
    yield
    HydraConfig.instance().cfg = saved


def job_of(mode: RunMode, *overrides: str) -> DictConfig:
    """Make HydraConfig what it is inside a job launched with ``overrides``."""
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("launch", overrides=list(overrides), return_hydra_config=True)
    with open_dict(cfg):
        cfg.hydra.mode = mode
    HydraConfig.instance().set_config(cfg)
    return cfg


@pytest.mark.usefixtures("under_hydra")
@pytest.mark.parametrize("n_jobs", [1, 2, 3, 64])
def test_a_joblib_job_gets_the_cores_divided_by_the_parallel_jobs(n_jobs: int) -> None:
    job_of(RunMode.MULTIRUN, "hydra/launcher=parallel", f"hydra.launcher.n_jobs={n_jobs}")
    assert cores_per_job() == max(1, available_cores() // n_jobs)


@pytest.mark.usefixtures("under_hydra")
def test_joblib_negative_n_jobs_count_from_the_cores() -> None:
    job_of(RunMode.MULTIRUN, "hydra/launcher=parallel", "hydra.launcher.n_jobs=-1")
    assert cores_per_job() == 1  # -1: a job per core


@pytest.mark.usefixtures("under_hydra")
def test_a_submitit_job_gets_its_cpus_per_task() -> None:
    job_of(RunMode.MULTIRUN, "hydra/launcher=slurm")
    assert cores_per_job() == 8


@pytest.mark.usefixtures("under_hydra")
@pytest.mark.parametrize(
    ("mode", "launcher"),
    [(RunMode.RUN, "parallel"), (RunMode.MULTIRUN, "basic")],
    ids=["single run", "basic launcher"],
)
def test_one_job_at_a_time_keeps_torchs_default(mode: RunMode, launcher: str) -> None:
    job_of(mode, f"hydra/launcher={launcher}")
    assert cores_per_job() is None


def test_outside_hydra_it_is_torchs_default() -> None:
    assert cores_per_job() is None


@pytest.mark.usefixtures("under_hydra")
def test_the_config_resolves_it_in_the_job() -> None:
    cfg = job_of(
        RunMode.MULTIRUN,
        "hydra/launcher=parallel",
        "hydra.launcher.n_jobs=1",
        "threads.torch_threads=${ami.cores_per_job:}",
    )
    assert cfg.threads.torch_threads == available_cores()
