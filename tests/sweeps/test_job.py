"""One job of a sweep: what it returns, raises and leaves behind for each way a run ends."""

from __future__ import annotations

import math
import os
import signal
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from omegaconf import DictConfig, OmegaConf

from ami.sweeps import JobNotStarted, ObjectiveUnavailable, SweepInterrupted
from ami.sweeps.job import run_job
from ami.sweeps.state import JOBS_TAKE_SIGINT_ENV, Sweep, set_current
from ami.sweeps.stop import request_stop, stop_reason

CFG: DictConfig = OmegaConf.create({})
LOSS = "training/dynamics/loss_final"


@dataclass(frozen=True)
class FakeOutcome:
    outcome: str
    reason: str | None = None
    metrics: Mapping[str, float] = field(default_factory=dict)


@pytest.fixture
def sweep_dir(tmp_path: Path) -> Path:
    (tmp_path / "0" / ".hydra").mkdir(parents=True)
    (tmp_path / "0" / "main.log").touch()
    return tmp_path


@pytest.fixture
def in_sweep_process(sweep_dir: Path) -> Iterator[None]:
    """The jobs run in the sweep's own process, as under the basic launcher."""
    set_current(Sweep(sweep_dir=sweep_dir, pid=os.getpid(), launcher="in_process"))
    yield
    set_current(None)


def job(sweep_dir: Path, run: object, objective: str | None = None) -> float | None:
    return run_job(CFG, sweep_dir / "0", run, sweep_dir, "job #0", objective)  # type: ignore[arg-type]


def returning(outcome: FakeOutcome) -> object:
    return lambda cfg, output_dir, stop_when: outcome


def interrupted_by_ctrl_c(cfg: DictConfig, output_dir: Path, stop_when: object) -> FakeOutcome:
    """A run that takes Ctrl+C as ami's run does: it stops and reports `interrupted`."""
    try:
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(30)
    except KeyboardInterrupt:
        return FakeOutcome("interrupted")
    raise AssertionError("SIGINT did not interrupt the run")


def test_a_completed_job_without_objective_returns_none(sweep_dir: Path) -> None:
    assert job(sweep_dir, returning(FakeOutcome("completed", metrics={LOSS: 0.5}))) is None
    assert stop_reason(sweep_dir) is None


def test_a_completed_job_returns_its_objective(sweep_dir: Path) -> None:
    run = returning(FakeOutcome("completed", metrics={LOSS: 0.25}))
    assert job(sweep_dir, run, objective=LOSS) == 0.25


def test_a_missing_objective_names_the_metric_and_what_the_run_has(sweep_dir: Path) -> None:
    run = returning(FakeOutcome("completed", metrics={"run/uptime_seconds": 3.0}))
    with pytest.raises(ObjectiveUnavailable, match=r"loss_final.*run/uptime_seconds"):
        job(sweep_dir, run, objective=LOSS)


def test_a_nan_objective_is_refused_rather_than_handed_to_optuna(sweep_dir: Path) -> None:
    run = returning(FakeOutcome("completed", metrics={LOSS: math.nan}))
    with pytest.raises(ObjectiveUnavailable, match="nan"):
        job(sweep_dir, run, objective=LOSS)


def test_a_failed_job_is_not_raised_so_the_sweep_goes_on(sweep_dir: Path) -> None:
    assert job(sweep_dir, returning(FakeOutcome("failed", "ValueError: boom"))) is None
    assert stop_reason(sweep_dir) is None


def test_a_failed_trial_tells_optuna_why_and_where_the_log_is(sweep_dir: Path) -> None:
    run = returning(FakeOutcome("failed", "ValueError: boom"))
    with pytest.raises(ObjectiveUnavailable, match=r"failed: ValueError: boom.*0/main.log"):
        job(sweep_dir, run, objective=LOSS)


def test_a_stopped_sweep_does_not_start_the_job_nor_keep_its_folder(sweep_dir: Path) -> None:
    request_stop(sweep_dir, "job #1 was interrupted (Ctrl+C)")
    ran: list[bool] = []
    assert job(sweep_dir, lambda cfg, out: ran.append(True)) is None
    assert ran == []
    assert not (sweep_dir / "0").exists()


def test_a_stopped_sweep_fails_a_trial_that_has_not_started(sweep_dir: Path) -> None:
    request_stop(sweep_dir, "stop")
    with pytest.raises(JobNotStarted, match="not started"):
        job(sweep_dir, returning(FakeOutcome("completed")), objective=LOSS)


def test_a_folder_with_more_than_hydra_wrote_is_kept(sweep_dir: Path) -> None:
    (sweep_dir / "0" / "outcome.json").write_text("{}")
    request_stop(sweep_dir, "stop")
    job(sweep_dir, returning(FakeOutcome("completed")))
    assert (sweep_dir / "0" / "outcome.json").exists()


@pytest.mark.usefixtures("in_sweep_process")
def test_in_the_sweep_process_a_stopped_sweep_ends_before_the_job(sweep_dir: Path) -> None:
    request_stop(sweep_dir, "stop")
    with pytest.raises(SweepInterrupted):
        job(sweep_dir, returning(FakeOutcome("completed")))


def test_ctrl_c_in_a_job_process_stops_the_other_jobs(sweep_dir: Path) -> None:
    assert job(sweep_dir, interrupted_by_ctrl_c) is None
    assert stop_reason(sweep_dir) == "job #0 was interrupted (Ctrl+C)"


@pytest.mark.usefixtures("in_sweep_process")
def test_ctrl_c_in_the_sweep_process_ends_the_sweep(sweep_dir: Path) -> None:
    with pytest.raises(SweepInterrupted):
        job(sweep_dir, interrupted_by_ctrl_c)
    assert stop_reason(sweep_dir) == "job #0 was interrupted (Ctrl+C)"


def test_a_job_stopped_by_sigterm_alone_leaves_the_sweep_running(sweep_dir: Path) -> None:
    """scancel or a preemption stops one job; the others go on."""
    assert job(sweep_dir, returning(FakeOutcome("interrupted"))) is None
    assert stop_reason(sweep_dir) is None


def test_a_stop_request_during_the_run_reaches_the_runs_main_loop(sweep_dir: Path) -> None:
    answers: list[str | None] = []

    def run(cfg: DictConfig, output_dir: Path, stop_when: Callable[[], str | None]) -> FakeOutcome:
        answers.append(stop_when())  # the run's main loop asks twice a second
        request_stop(sweep_dir, "SIGTERM to the sweep's process")
        answers.append(stop_when())
        return FakeOutcome("interrupted")

    assert job(sweep_dir, run) is None
    assert answers == [None, "SIGTERM to the sweep's process"]
    assert stop_reason(sweep_dir) == "SIGTERM to the sweep's process"


def test_a_worker_that_inherited_sigint_ignored_takes_it_only_while_its_job_runs(
    sweep_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(JOBS_TAKE_SIGINT_ENV, "1")
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        assert job(sweep_dir, interrupted_by_ctrl_c) is None
        assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)
    assert stop_reason(sweep_dir) == "job #0 was interrupted (Ctrl+C)"


def test_sigint_ignored_by_the_shell_stays_ignored(
    sweep_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(JOBS_TAKE_SIGINT_ENV, raising=False)
    seen: list[object] = []

    def run(cfg: DictConfig, output_dir: Path, stop_when: object) -> FakeOutcome:
        seen.append(signal.getsignal(signal.SIGINT))
        return FakeOutcome("completed")

    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        job(sweep_dir, run)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert seen == [signal.SIG_IGN]


def test_under_submitit_the_time_limit_signal_stops_the_run_cleanly_and_once(
    sweep_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """submitit's own handler would raise mid-run (no outcome.json) or requeue from zero."""
    monkeypatch.setenv("SUBMITIT_EXECUTOR", "slurm")
    monkeypatch.delenv("SUBMITIT_PREEMPT_SIGNAL", raising=False)
    before = signal.getsignal(signal.SIGUSR2)

    def run(cfg: DictConfig, output_dir: Path, stop_when: object) -> FakeOutcome:
        try:
            os.kill(os.getpid(), signal.SIGUSR2)
            time.sleep(30)
        except KeyboardInterrupt:
            os.kill(os.getpid(), signal.SIGUSR2)  # a second one, while stopping: ignored
            return FakeOutcome("interrupted")
        raise AssertionError("SIGUSR2 did not stop the run")

    assert job(sweep_dir, run) is None
    assert stop_reason(sweep_dir) is None  # that job alone: the sweep goes on
    assert signal.getsignal(signal.SIGUSR2) == before
