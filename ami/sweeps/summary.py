"""The lines a sweep ends with: which jobs completed, were interrupted, failed or never ran.

Read from the job folders (each run's ``outcome.json``), so that it holds for every
launcher, also where the jobs ran in other processes or on other machines.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from ami.sweeps.stop import stop_reason

UNFINISHED = "unfinished"
"""A job folder without ``outcome.json``: the job was killed, or still runs."""


@dataclass(frozen=True)
class JobResult:
    """One job folder of a sweep."""

    num: int
    folder: Path
    outcome: str
    reason: str | None
    overrides: tuple[str, ...]
    metrics: dict[str, float | None]


@dataclass(frozen=True)
class SweepSummary:
    """The summary's text and the exit code it implies."""

    text: str
    exit_code: int


def read_jobs(sweep_dir: Path) -> list[JobResult]:
    """Every job folder (``<sweep dir>/<job num>``) of the sweep, by job number."""
    if not sweep_dir.is_dir():
        return []
    jobs = [
        _read_job(int(child.name), child)
        for child in sweep_dir.iterdir()
        if child.is_dir() and child.name.isdigit()
    ]
    return sorted(jobs, key=lambda job: job.num)


def _read_job(num: int, folder: Path) -> JobResult:
    try:
        record = json.loads((folder / "outcome.json").read_text())
    except (OSError, ValueError):
        return JobResult(num, folder, UNFINISHED, None, _hydra_overrides(folder), {})
    return JobResult(
        num=num,
        folder=folder,
        outcome=str(record.get("outcome", UNFINISHED)),
        reason=record.get("reason"),
        overrides=tuple(str(item) for item in record.get("overrides") or ()),
        metrics=dict(record.get("metrics") or {}),
    )


def _hydra_overrides(folder: Path) -> tuple[str, ...]:
    from omegaconf import OmegaConf

    try:
        return tuple(str(item) for item in OmegaConf.load(folder / ".hydra" / "overrides.yaml"))
    except Exception:
        return ()


def summarize(
    sweep_dir: Path,
    expected_jobs: int | None = None,
    interrupted: bool = False,
    sweep_error: bool = False,
    objective: str | None = None,
) -> SweepSummary:
    """The summary of the sweep in ``sweep_dir`` and its exit code.

    Args:
        sweep_dir: The sweep's folder.
        expected_jobs: How many jobs the sweep meant to run, if known.
        interrupted: The sweep's process was interrupted (Ctrl+C reached it).
        sweep_error: Hydra, a launcher or the sweeper raised an error.
        objective: ``optimized_metric``: shown beside each completed job.

    Returns:
        Exit code 1 if any job failed or has no outcome (killed), or the sweep itself
        failed and was not stopped on purpose; else 0 (completed or interrupted).
    """
    jobs = read_jobs(sweep_dir)
    stop = stop_reason(sweep_dir)
    stopped = interrupted or stop is not None
    varying = _varying(jobs)
    lines = [f"Sweep {sweep_dir}" + (f": stopped ({stop or 'Ctrl+C'})" if stopped else "")]
    for job in jobs:
        lines.extend(_job_lines(job, varying, objective))
    not_started = None if expected_jobs is None else max(0, expected_jobs - len(jobs))
    if not_started:
        lines.append(f"  not started  {not_started} of {expected_jobs} jobs")
    elif stopped and expected_jobs is None:
        lines.append("  not started  every later job")
    counts: dict[str, int] = {}
    for job in jobs:
        counts[job.outcome] = counts.get(job.outcome, 0) + 1
    if not_started:
        counts["not started"] = not_started
    broken = counts.get("failed", 0) + counts.get(UNFINISHED, 0)
    failed_sweep = sweep_error and not stopped
    if failed_sweep:
        lines.append("  the sweep itself failed: see the error above")
    order = ("completed", "interrupted", "failed", UNFINISHED, "not started")
    tally = ", ".join(f"{counts[name]} {name}" for name in order if counts.get(name))
    lines.append(f"Jobs: {tally or 'none ran'}")
    return SweepSummary("\n".join(lines), 1 if broken or failed_sweep else 0)


def _varying(jobs: list[JobResult]) -> set[str]:
    """The overrides that tell the jobs apart (all of them for a single job)."""
    if len(jobs) < 2:
        return {item for job in jobs for item in job.overrides}
    common = set(jobs[0].overrides).intersection(*(set(job.overrides) for job in jobs[1:]))
    return {item for job in jobs for item in job.overrides} - common


def _job_lines(job: JobResult, varying: set[str], objective: str | None) -> list[str]:
    shown = " ".join(item for item in job.overrides if item in varying)
    head = f"  {job.outcome:<12} #{job.num}" + (f"  {shown}" if shown else "")
    if job.outcome == "completed" and objective is not None:
        value = job.metrics.get(objective)
        number = "missing" if value is None or not math.isfinite(value) else f"{value:.6g}"
        head += f"  ({objective} {number})"
    log = f"{'':15}log: {job.folder / 'main.log'}"
    if job.outcome == "failed":
        reason = (job.reason or "").strip().splitlines()
        return [head + (f": {reason[0]}" if reason else ""), log]
    if job.outcome == UNFINISHED:
        return [head + ": no outcome.json (killed, or still running)", log]
    return [head]
