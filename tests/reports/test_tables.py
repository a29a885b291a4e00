import csv
import io
from pathlib import Path

import pytest
from reports.fake_runs import write_run

from ami.reports.summary import Runs, collect
from ami.reports.tables import Table, build_table, format_number, notes, render


def sweep(tmp_path: Path) -> Runs:
    root = tmp_path / "multiruns" / "stamp"
    write_run(
        root / "0",
        overrides=["model.trainers.dynamics.lr=0.001", "max_uptime=8"],
        losses={"dynamics": [2.0] * 60},
        final={"training/dynamics/loss_final": 0.123456, "run/uptime_seconds": 8.01234},
    )
    write_run(
        root / "1",
        overrides=["model.trainers.dynamics.lr=0.0003", "max_uptime=8"],
        losses={"dynamics": [1.0] * 60},
        final={"training/dynamics/loss_final": 0.5, "inference/overruns_total": 2.0},
        outcome="failed",
        reason="ConfigAttributeError: Missing key close\n    full_key: web_api.close",
    )
    write_run(
        root / "2",
        overrides=["model.trainers.dynamics.lr=0.0001", "max_uptime=8", "seed=7"],
        losses={"dynamics": [3.0] * 10},
        outcome=None,
    )
    return collect([root])


def column(table: Table, name: str) -> list[object]:
    index = table.columns.index(name)
    return [row[index] for row in table.rows]


def test_one_row_per_run_with_a_column_per_override_key(tmp_path: Path) -> None:
    runs = sweep(tmp_path)

    table = build_table(runs.runs, runs.names)

    assert table.columns[:5] == [
        "run",
        "model.trainers.dynamics.lr",
        "max_uptime",
        "seed",
        "outcome",
    ]
    assert column(table, "run") == ["0", "1", "2"]
    assert column(table, "model.trainers.dynamics.lr") == ["0.001", "0.0003", "0.0001"]
    assert column(table, "seed") == [None, None, "7"]  # blank where a run did not set it
    assert column(table, "outcome") == ["completed", "failed", "unknown"]
    assert column(table, "dynamics/loss_final") == [pytest.approx(0.123456), 0.5, 3.0]
    assert column(table, "overruns") == [None, 2.0, None]
    assert "cells_visited" not in table.columns  # no run of the sim world


def test_only_the_varying_overrides_on_request(tmp_path: Path) -> None:
    runs = sweep(tmp_path)

    table = build_table(runs.runs, runs.names, varying_only=True)

    assert "max_uptime" not in table.columns
    assert {"model.trainers.dynamics.lr", "seed"} <= set(table.columns)


def test_hparams_that_differ_between_runs_are_columns_on_request(tmp_path: Path) -> None:
    for job in (0, 1):
        write_run(
            tmp_path / "s" / str(job),
            overrides=[f"model.trainers.vae.lr=0.00{job + 1}"],
            hparams={
                "seed": job,
                "params/vae": 1000,
                "model.trainers.vae.lr": 0.001 * (job + 1),
                "overrides": f"model.trainers.vae.lr=0.00{job + 1}",
            },
        )
    runs = collect([tmp_path / "s"])

    assert "hp:seed" not in build_table(runs.runs, runs.names).columns
    table = build_table(runs.runs, runs.names, hparams=True)

    assert column(table, "hp:seed") == [0.0, 1.0]
    assert "hp:params/vae" not in table.columns  # the same in every run
    # Already shown as override columns.
    assert "hp:model.trainers.vae.lr" not in table.columns
    assert "hp:overrides" not in table.columns


def test_text_is_aligned_and_shows_four_significant_digits(tmp_path: Path) -> None:
    runs = sweep(tmp_path)

    text = render(build_table(runs.runs, runs.names), "text")

    lines = text.splitlines()
    assert len(lines) == 2 + 3
    assert set(lines[1].replace(" ", "")) == {"-"}
    outcome_at = lines[0].index("outcome")
    assert [line[outcome_at:].split()[0] for line in lines[2:]] == [
        "completed",
        "failed",
        "unknown",
    ]
    assert "0.1235" in lines[2] and "8.012" in lines[2]
    assert "0.123456" not in text


def test_markdown_parses_back_into_the_same_cells(tmp_path: Path) -> None:
    runs = sweep(tmp_path)
    table = build_table(runs.runs, runs.names)

    lines = render(table, "markdown").splitlines()

    cells = [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]
    assert cells[0] == table.columns
    assert all(cell.strip(":").strip("-") == "" for cell in cells[1])
    assert [row[0] for row in cells[2:]] == ["0", "1", "2"]
    lr = table.columns.index("model.trainers.dynamics.lr")
    assert [row[lr] for row in cells[2:]] == ["0.001", "0.0003", "0.0001"]


def test_csv_parses_back_with_the_csv_module(tmp_path: Path) -> None:
    runs = sweep(tmp_path)

    rows = list(csv.DictReader(io.StringIO(render(build_table(runs.runs, runs.names), "csv"))))

    assert [row["run"] for row in rows] == ["0", "1", "2"]
    assert [row["outcome"] for row in rows] == ["completed", "failed", "unknown"]
    assert [row["seed"] for row in rows] == ["", "", "7"]
    assert float(rows[0]["dynamics/loss_final"]) == pytest.approx(0.123456, rel=1e-6)


def test_a_cell_holding_a_pipe_does_not_break_a_markdown_row(tmp_path: Path) -> None:
    write_run(tmp_path / "s" / "0", overrides=["note=a|b"])
    runs = collect([tmp_path / "s"])

    row = render(build_table(runs.runs, runs.names), "markdown").splitlines()[2]

    assert "a\\|b" in row


def test_notes_say_why_a_run_failed(tmp_path: Path) -> None:
    runs = sweep(tmp_path)

    assert notes(runs.runs, runs.names) == [
        "1: failed: ConfigAttributeError: Missing key close full_key: web_api.close"
    ]


def test_a_damaged_run_is_reported_in_its_row_and_the_others_still_show(tmp_path: Path) -> None:
    runs_dir = tmp_path / "runs"
    write_run(runs_dir / "a", losses={"dynamics": [1.0]})
    damaged = write_run(runs_dir / "b", losses={"dynamics": [1.0]})
    for path in (damaged / "tensorboard").iterdir():
        path.write_bytes(b"\x00garbage" * 10)
    runs = collect([runs_dir])

    table = build_table(runs.runs, runs.names)

    outcomes = column(table, "outcome")
    assert outcomes[0] == "completed"
    assert str(outcomes[1]).startswith("unreadable: tensorboard/events.out.tfevents.")
    assert column(table, "dynamics/loss_final") == [1.0, None]


def test_numbers_are_shown_to_four_significant_digits() -> None:
    assert format_number(0.000123456) == "0.0001235"
    assert format_number(3.14159) == "3.142"
    assert format_number(1234.56) == "1235"
    assert format_number(123456.7) == "123457"  # a count, not 1.235e+05
    assert format_number(2.0) == "2"
    assert format_number(float("nan")) == "nan"


def test_an_unknown_format_is_refused_naming_the_accepted_ones() -> None:
    with pytest.raises(ValueError, match="format 'html': expected one of text, markdown, csv"):
        render(Table(["run"], []), "html")
