"""Read every run under some paths, in the order a summary shows them.

The pieces a summary is made of (:mod:`~ami.reports.tables`,
:mod:`~ami.reports.curves`) work on the list this returns; ``scripts/summarize.py``
only parses arguments and prints.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ami.reports.run_data import RunData, read_run
from ami.reports.run_folders import find_runs, natural_key, run_names


@dataclass(frozen=True)
class Runs:
    """The runs found, in display order (job number / run name), and their names."""

    runs: list[RunData]
    names: dict[Path, str]


def collect(paths: Sequence[Path]) -> Runs:
    """Find and read every run at or under ``paths``.

    A run whose files are damaged is returned with its problems (its row says
    ``unreadable: ...``); nothing in one run's files stops the others being read.

    Raises:
        NoRunsFound: A path does not exist, is not a folder, or holds no run.
    """
    found = find_runs(paths)
    names = run_names(found)
    ordered = sorted(found, key=lambda run: natural_key(names[run]))
    return Runs([_read(run) for run in ordered], names)


def _read(path: Path) -> RunData:
    try:
        return read_run(path)
    except Exception as error:  # a bug or a file we did not foresee: this row only
        run = RunData(path)
        run.problems.append(f"{type(error).__name__}: {error}")
        return run
