"""`python scripts/summarize.py ...` run as a researcher runs it, in a subprocess."""

from __future__ import annotations

import csv
import io
import subprocess
import sys
from pathlib import Path

import pytest
from reports.fake_runs import write_run

ROOT = Path(__file__).resolve().parents[1]
SUMMARIZE = ROOT / "scripts" / "summarize.py"
LAUNCH = ROOT / "scripts" / "launch.py"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def summarize(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SUMMARIZE), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def two_job_sweep(tmp_path: Path) -> Path:
    sweep = tmp_path / "logs" / "default" / "multiruns" / "2026-01-01_00-00-00_000000_1"
    for job, (lr, loss) in enumerate((("0.001", 0.25), ("0.0003", 0.75))):
        write_run(
            sweep / str(job),
            overrides=[f"model.trainers.dynamics.lr={lr}", "max_uptime=60"],
            losses={"dynamics": [1.0 + loss] * 80},
            cells=[1, 2, 3],
            final={"training/dynamics/loss_final": loss, "run/uptime_seconds": 60.0},
        )
    return sweep


def test_a_sweep_prints_one_row_per_job_and_writes_the_png(tmp_path: Path) -> None:
    sweep = two_job_sweep(tmp_path)

    result = summarize(sweep)

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split()[:3] == ["run", "model.trainers.dynamics.lr", "max_uptime"]
    assert lines[2].split()[:4] == ["0", "0.001", "60", "completed"]
    assert lines[3].split()[:4] == ["1", "0.0003", "60", "completed"]
    assert "0.25" in lines[2] and "0.75" in lines[3]
    png = sweep / "summary.png"
    assert f"curves: {png}" in result.stdout
    assert png.read_bytes().startswith(PNG_SIGNATURE)


def test_csv_on_stdout_stays_clean_and_the_png_goes_where_asked(tmp_path: Path) -> None:
    sweep = two_job_sweep(tmp_path)
    png = tmp_path / "curves.png"

    result = summarize(sweep, "--format", "csv", "--png", png)

    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [row["model.trainers.dynamics.lr"] for row in rows] == ["0.001", "0.0003"]
    assert [float(row["dynamics/loss_final"]) for row in rows] == [0.25, 0.75]
    assert f"curves: {png}" in result.stderr
    assert png.stat().st_size > 0
    assert not (sweep / "summary.png").exists()


def test_no_png_writes_none(tmp_path: Path) -> None:
    sweep = two_job_sweep(tmp_path)

    result = summarize(sweep, "--no-png", "--format", "markdown")

    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("| run | model.trainers.dynamics.lr |")
    assert not (sweep / "summary.png").exists()
    assert "curves:" not in result.stdout


def test_a_path_that_does_not_exist_exits_2_naming_it(tmp_path: Path) -> None:
    sweep = two_job_sweep(tmp_path)
    missing = tmp_path / "logs" / "typo"

    result = summarize(sweep, missing)

    assert result.returncode == 2
    assert f"{missing}: no such folder" in result.stderr
    assert result.stdout == ""


def test_a_folder_without_runs_exits_2_naming_it(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()

    result = summarize(tmp_path / "empty")

    assert result.returncode == 2
    assert f"{tmp_path / 'empty'}: no run folder in it" in result.stderr


def test_png_and_no_png_together_are_bad_arguments(tmp_path: Path) -> None:
    result = summarize(two_job_sweep(tmp_path), "--png", tmp_path / "a.png", "--no-png")

    assert result.returncode == 2
    assert "not allowed with argument" in result.stderr


def test_a_png_in_a_folder_that_does_not_exist_is_a_bad_argument(tmp_path: Path) -> None:
    png = tmp_path / "no_such_folder" / "summary.png"

    result = summarize(two_job_sweep(tmp_path), "--png", png)

    assert result.returncode == 2
    assert f"--png {png}: the folder {png.parent} does not exist" in result.stderr


def test_a_png_that_cannot_be_written_exits_1_naming_it_after_the_table(tmp_path: Path) -> None:
    png = tmp_path / "taken"
    png.mkdir()  # a folder where the file should go

    result = summarize(two_job_sweep(tmp_path), "--png", png)

    assert result.returncode == 1
    assert result.stdout.splitlines()[2].startswith("0 ")
    assert f"could not write the PNG {png}: Is a directory" in result.stderr


def test_a_damaged_run_shows_in_its_row_and_the_summary_exits_0(tmp_path: Path) -> None:
    sweep = two_job_sweep(tmp_path)
    for path in (sweep / "1" / "tensorboard").iterdir():
        path.write_bytes(b"\x01" * 64)

    result = summarize(sweep, "--format", "csv", "--no-png")

    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert rows[0]["outcome"] == "completed"
    assert rows[1]["outcome"].startswith("unreadable: tensorboard/events.out.tfevents.")


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_real_two_job_lr_sweep_summarizes_into_two_rows_differing_in_lr(
    tmp_path: Path,
) -> None:
    launched = subprocess.run(
        [
            sys.executable,
            str(LAUNCH),
            "-m",
            "model.trainers.dynamics.lr=1e-3,3e-4",
            "max_uptime=8",
            "debug=smoke",
            f"paths.log_dir={tmp_path}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    (sweep,) = (tmp_path / "smoke" / "multiruns").iterdir()  # debug=smoke: task_name smoke

    result = summarize(sweep, "--format", "csv")

    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [row["run"] for row in rows] == ["0", "1"]
    assert [row["model.trainers.dynamics.lr"] for row in rows] == ["0.001", "0.0003"]
    # Trained in both (whether 8 s differ in loss depends on the machine's speed).
    assert all(row["dynamics/loss_final"] for row in rows), rows
    assert all(float(row["uptime_s"]) > 0 for row in rows)
    png = sweep / "summary.png"
    assert png.read_bytes().startswith(PNG_SIGNATURE)
    # Last, so that a failing run still shows whether the summary read it.
    assert launched.returncode == 0, launched.stdout + launched.stderr
    assert [row["outcome"] for row in rows] == ["completed", "completed"]
