"""Find the run folders under the paths a researcher names, and name them for a table.

A researcher points at whatever they have at hand: one run, a multirun
(``logs/<task>/multiruns/<stamp>/`` holding ``0/``, ``1/``...), a task's ``runs/`` folder
or all of ``logs/``. A *run folder* is one that holds ``.hydra/`` or a ``tensorboard/``
folder with event files; the search does not look inside a run folder (its
``tensorboard/main`` of the older layout is part of it, not a run of its own).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

RUN_MARKERS = "a run folder holds .hydra/ or tensorboard/ with event files"
"""What the search looks for, in words for error messages."""

_SKIPPED = {"tensorboard", "checkpoints", "__pycache__"}
"""Folders that never hold a run: not worth walking (checkpoints can be large trees)."""


class NoRunsFound(ValueError):
    """A named path does not exist, is not a folder, or holds no run folder."""


def is_run_folder(path: Path) -> bool:
    """Whether ``path`` is one run's own folder (single run or one job of a multirun)."""
    if (path / ".hydra").is_dir():
        return True
    tensorboard = path / "tensorboard"
    if not tensorboard.is_dir():
        return False
    return any("tfevents" in name for _, _, names in os.walk(tensorboard) for name in names)


def find_runs(paths: Sequence[Path]) -> list[Path]:
    """Every run folder at or under each path, once each, in natural order.

    Raises:
        NoRunsFound: Naming the first path that does not exist, is not a folder, or
            holds no run folder: a typo must not pass as "no runs".
    """
    found: dict[Path, None] = {}
    for path in paths:
        if not path.exists():
            raise NoRunsFound(f"{path}: no such folder")
        if not path.is_dir():
            raise NoRunsFound(f"{path}: not a folder (name a run, a multirun or a logs folder)")
        runs = list(_walk(path))
        if not runs:
            raise NoRunsFound(f"{path}: no run folder in it ({RUN_MARKERS})")
        found.update(dict.fromkeys(run.resolve() for run in runs))
    return sorted(found, key=lambda run: natural_key(str(run)))


def _walk(top: Path) -> Iterable[Path]:
    if is_run_folder(top):
        yield top
        return
    for root, folders, _ in os.walk(top):
        here = Path(root)
        keep = []
        for name in sorted(folders):
            if name.startswith(".") or name in _SKIPPED:
                continue
            if is_run_folder(here / name):
                yield here / name
            else:
                keep.append(name)
        folders[:] = keep  # os.walk descends only into these


def run_names(runs: Sequence[Path]) -> dict[Path, str]:
    """Each run's path relative to the folder that holds them all.

    A multirun's jobs read ``0``, ``1``...; runs of several multiruns keep the part of
    the path that tells them apart; a lone run is named by its own folder.
    """
    if not runs:
        return {}
    parent = Path(os.path.commonpath([run.parent for run in runs]))
    return {run: run.relative_to(parent).as_posix() for run in runs}


def natural_key(text: str) -> tuple[tuple[int, int | str], ...]:
    """Sort key that orders digit runs by value: job ``2`` before job ``10``."""
    return tuple(
        (0, int(part)) if part.isdigit() else (1, part) for part in re.split(r"(\d+)", text) if part
    )
