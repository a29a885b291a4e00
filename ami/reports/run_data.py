"""One run as a summary sees it: its overrides, its outcome and its event data.

A run folder (README, "Watch a run") holds ``.hydra/overrides.yaml`` (what
the researcher set on the command line), ``outcome.json`` (written when the run ends,
also when it fails; absent when the process was killed) and ``tensorboard/``. Each is
read on its own: a damaged file costs only what it holds, and every problem is kept,
in one line naming the file, so that the row says why it is incomplete.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from ami.reports.event_reading import DamagedEventFile, EventData, read_events

OUTCOMES = ("completed", "failed", "interrupted")
"""What ``outcome.json`` may say; a run without one reads ``unknown`` (unless its event
files hold :data:`OUTCOME_CODE`, written once as the run ended)."""

OUTCOME_CODE = "run/outcome_code"
"""The outcome as a number: 0 completed, 1 interrupted, 2 failed."""


@dataclass
class RunData:
    """Everything a summary shows about one run.

    Attributes:
        path: The run folder.
        overrides: ``key -> value`` as typed on the command line (or by the sweeper).
        outcome: ``completed``, ``failed``, ``interrupted``, or ``unknown`` when the run
            wrote no ``outcome.json`` and no ``run/outcome_code`` (killed, or still
            running).
        reason: The one line ``outcome.json`` gives for a failure.
        outcome_metrics: The end-of-run numbers ``outcome.json`` records.
        events: Scalars and hparams from the event files.
        problems: One line per file that could not be read, naming it.
    """

    path: Path
    overrides: dict[str, str] = field(default_factory=dict)
    outcome: str = "unknown"
    reason: str | None = None
    outcome_metrics: dict[str, float] = field(default_factory=dict)
    events: EventData = field(default_factory=EventData)
    problems: list[str] = field(default_factory=list)

    @property
    def status(self) -> str:
        """The outcome, or ``unreadable: <first problem>`` when a file was damaged."""
        if self.problems:
            return f"unreadable: {self.problems[0]}"
        return self.outcome


def read_run(path: Path) -> RunData:
    """Read one run folder; never raises for what is in its files."""
    run = RunData(path)
    overrides_file = path / ".hydra" / "overrides.yaml"
    outcome_file = path / "outcome.json"
    listed: list[str] | None = None
    from_outcome: list[str] | None = None
    if overrides_file.is_file():
        try:
            listed = _read_overrides(overrides_file)
        except (OSError, ValueError, OmegaConfBaseException) as error:
            run.problems.append(f".hydra/overrides.yaml: {_one_line(error)}")
    if outcome_file.is_file():
        try:
            from_outcome = _read_outcome(outcome_file, run)
        except (OSError, ValueError) as error:
            run.problems.append(f"outcome.json: {_one_line(error)}")
    tensorboard = path / "tensorboard"
    if tensorboard.is_dir():
        try:
            run.events = read_events(tensorboard)
        except (OSError, DamagedEventFile) as error:
            run.problems.append(f"tensorboard/{_one_line(error)}")
    # Hydra's own record first; the copies in outcome.json and in the hparams serve a
    # run whose .hydra/ is gone (e.g. only its event files were kept).
    if listed is None:
        listed = from_outcome if from_outcome is not None else _hparams_overrides(run)
    run.overrides = parse_overrides(listed or [])
    if not outcome_file.is_file():
        run.outcome = _outcome_from_code(run)
    return run


def parse_overrides(overrides: list[str]) -> dict[str, str]:
    """``["a.b=1", "+c=x", "~d"]`` -> ``{"a.b": "1", "c": "x", "d": "(deleted)"}``."""
    parsed: dict[str, str] = {}
    for override in overrides:
        key, sign, value = override.partition("=")
        if key.startswith("~"):
            parsed[key.lstrip("~")] = "(deleted)"
        elif sign:
            parsed[key.lstrip("+")] = value
        else:
            parsed[key] = ""
    return parsed


def _hparams_overrides(run: RunData) -> list[str] | None:
    """The ``overrides`` hparam: the overrides, sorted and space separated."""
    text = run.events.hparams.get("overrides")
    if not isinstance(text, str):
        return None
    parts = text.split()
    # A value with a space in it would split wrongly: then trust none of it.
    if not all("=" in part or part.startswith("~") for part in parts):
        return None
    return parts


def _outcome_from_code(run: RunData) -> str:
    """``run/outcome_code``, written once at the end; ``unknown`` without it."""
    series = run.events.scalars.get(OUTCOME_CODE)
    if series is None or not len(series):
        return "unknown"
    return {0.0: "completed", 1.0: "interrupted", 2.0: "failed"}.get(series.last, "unknown")


def _read_overrides(path: Path) -> list[str]:
    loaded = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    if loaded is None:
        return []
    if not isinstance(loaded, list) or not all(isinstance(item, str) for item in loaded):
        raise ValueError("expected a list of key=value strings")
    return [str(item) for item in loaded]


def _read_outcome(path: Path, run: RunData) -> list[str] | None:
    """Fill the outcome, reason and metrics in; return the overrides it lists."""
    try:
        content: Any = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"not JSON ({error})") from error
    if not isinstance(content, dict):
        raise ValueError("expected a JSON object")
    outcome = content.get("outcome")
    if outcome not in OUTCOMES:
        raise ValueError(f"outcome {outcome!r} is not one of {', '.join(OUTCOMES)}")
    run.outcome = str(outcome)
    reason = content.get("reason")
    run.reason = None if reason is None else str(reason)
    metrics = content.get("metrics") or {}
    if not isinstance(metrics, dict):
        raise ValueError("metrics must be an object of tag -> number")
    run.outcome_metrics = {
        str(tag): float(value)
        for tag, value in metrics.items()
        if isinstance(value, int | float) and not isinstance(value, bool)
    }
    listed = content.get("overrides")
    if isinstance(listed, list) and all(isinstance(item, str) for item in listed):
        return [str(item) for item in listed]
    return None


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__
