"""The one-row-per-run table of a summary, as aligned text, markdown or CSV.

Columns: the run (its path under the folder that holds every run), each override key
(the union over runs; blank where a run did not set it), the outcome, then the key
numbers (:mod:`~ami.reports.final_metrics`). Text and markdown show numbers to four
significant digits, for reading; CSV keeps seven (all a float32 scalar holds), for
tools.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ami.reports import final_metrics as fm
from ami.reports.run_data import RunData

Cell = str | float | None
FORMATS = ("text", "markdown", "csv")

HPARAM_PREFIX = "hp:"
"""Marks an hparam column apart from an override column of the same key."""


@dataclass(frozen=True)
class Table:
    """Column names and one row of cells per run, in the order shown."""

    columns: list[str]
    rows: list[list[Cell]]


def build_table(
    runs: Sequence[RunData],
    names: dict[Path, str],
    varying_only: bool = False,
    hparams: bool = False,
) -> Table:
    """One row per run, in the order given.

    Args:
        runs: The runs, already in display order.
        names: Each run's name (:func:`~ami.reports.run_folders.run_names`).
        varying_only: Show only the override keys whose value differs between runs
            (a key some runs did not set counts as differing).
        hparams: Add a column for each hparam whose value differs between runs and that
            no override column already shows (nor the ``overrides`` hparam, which lists
            them all).
    """
    keys = _union(run.overrides for run in runs)
    if varying_only:
        keys = [key for key in keys if _varies([run.overrides.get(key) for run in runs])]
    hparam_keys: list[str] = []
    if hparams:
        shown = {*keys, *(f"choice/{key}" for key in keys), "overrides"}  # already columns
        hparam_keys = [
            key
            for key in _union(run.events.hparams for run in runs)
            if key not in shown and _varies([run.events.hparams.get(key) for run in runs])
        ]
    metrics = [fm.final_metrics(run) for run in runs]
    trainers = sorted({trainer for run in runs for trainer in fm.trainers(run)})
    numbers: list[tuple[str, str]] = [(f"{t}/loss_final", fm.final_loss_tag(t)) for t in trainers]
    numbers += [("steps/s", fm.STEPS_PER_SECOND), ("overruns", fm.OVERRUNS)]
    if any(fm.CELLS_VISITED in found for found in metrics):
        numbers.append(("cells_visited", fm.CELLS_VISITED))
    numbers.append(("uptime_s", fm.UPTIME))

    columns = ["run", *keys, *(HPARAM_PREFIX + key for key in hparam_keys), "outcome"]
    columns += [column for column, _ in numbers]
    rows: list[list[Cell]] = []
    for run, found in zip(runs, metrics, strict=True):
        row: list[Cell] = [names[run.path]]
        row += [run.overrides.get(key) for key in keys]
        row += [_hparam_cell(run.events.hparams.get(key)) for key in hparam_keys]
        row.append(run.status)
        row += [found.get(tag) for _, tag in numbers]
        rows.append(row)
    return Table(columns, rows)


def notes(runs: Sequence[RunData], names: dict[Path, str]) -> list[str]:
    """What a row cannot say: why a run failed, every damaged file, truncated files."""
    lines: list[str] = []
    for run in runs:
        name = names[run.path]
        if run.reason:  # one line, as the table's other lines (some errors span several)
            lines.append(f"{name}: {run.outcome}: {' '.join(run.reason.split())}")
        lines += [f"{name}: unreadable: {problem}" for problem in run.problems[1:]]
        lines += [
            f"{name}: tensorboard/{file} ends in an incomplete record (killed?); read up to it"
            for file in run.events.truncated
        ]
    return lines


def render(table: Table, fmt: str) -> str:
    """The table as ``text`` (aligned columns), ``markdown`` or ``csv``."""
    renderers: dict[str, Callable[[Table], str]] = {
        "text": _text,
        "markdown": _markdown,
        "csv": _csv,
    }
    if fmt not in renderers:
        raise ValueError(f"format {fmt!r}: expected one of {', '.join(FORMATS)}")
    return renderers[fmt](table)


def format_number(value: float, digits: int = 4) -> str:
    """Four significant digits, but never an exponent for a count of thousands."""
    if math.isnan(value) or math.isinf(value):
        return str(value)
    if abs(value) >= 10**digits and abs(value) < 1e15:
        return f"{value:.0f}"
    return f"{value:.{digits}g}"


def _cell(value: Cell, digits: int = 4) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return format_number(value, digits)
    return value


def _numeric(table: Table) -> list[bool]:
    """Columns whose every filled cell is a number: aligned right."""
    return [
        all(isinstance(row[i], float) for row in table.rows if row[i] is not None)
        and any(row[i] is not None for row in table.rows)
        for i in range(len(table.columns))
    ]


def _text(table: Table) -> str:
    cells = [[_cell(value) for value in row] for row in table.rows]
    widths = [
        max([len(column)] + [len(row[i]) for row in cells])
        for i, column in enumerate(table.columns)
    ]
    right = _numeric(table)

    def line(values: Sequence[str]) -> str:
        parts = [
            value.rjust(width) if is_right else value.ljust(width)
            for value, width, is_right in zip(values, widths, right, strict=True)
        ]
        return "  ".join(parts).rstrip()

    rule = ["-" * width for width in widths]
    return "\n".join([line(table.columns), line(rule), *(line(row) for row in cells)]) + "\n"


def _markdown(table: Table) -> str:
    def line(values: Sequence[str]) -> str:
        return "| " + " | ".join(value.replace("|", "\\|") for value in values) + " |"

    rule = ["---:" if is_right else "---" for is_right in _numeric(table)]
    rows = [line([_cell(value) for value in row]) for row in table.rows]
    return "\n".join([line(table.columns), "|" + "|".join(rule) + "|", *rows]) + "\n"


def _csv(table: Table) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(table.columns)
    writer.writerows([_cell(value, digits=7) for value in row] for row in table.rows)
    return out.getvalue()


def _union(mappings: Iterable[Mapping[str, object]]) -> list[str]:
    """Keys in order of first appearance: the order the researcher typed them."""
    keys: dict[str, None] = {}
    for mapping in mappings:
        keys.update(dict.fromkeys(mapping))
    return list(keys)


def _varies(values: Sequence[object]) -> bool:
    return len({repr(value) for value in values}) > 1


def _hparam_cell(value: float | str | bool | None) -> Cell:
    if value is None or isinstance(value, float | str):
        return value
    return str(value)
