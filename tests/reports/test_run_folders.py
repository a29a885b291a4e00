import re
from pathlib import Path

import pytest
from reports.fake_runs import write_run

from ami.reports import NoRunsFound, find_runs, run_names
from ami.reports.run_folders import is_run_folder, natural_key


def test_a_multiruns_jobs_are_found_in_job_number_order(tmp_path: Path) -> None:
    sweep = tmp_path / "multiruns" / "2026-01-01_00-00-00_1"
    for job in (10, 2, 0, 1):
        write_run(sweep / str(job), overrides=[f"seed={job}"])
    (sweep / "multirun.yaml").write_text("hydra: {}\n")

    runs = find_runs([sweep])

    assert [run.name for run in runs] == ["0", "1", "2", "10"]
    assert list(run_names(runs).values()) == ["0", "1", "2", "10"]


def test_runs_are_found_anywhere_below_a_logs_folder_and_never_inside_a_run(
    tmp_path: Path,
) -> None:
    logs = tmp_path / "logs"
    single = write_run(logs / "default" / "runs" / "a_1", layout="old", losses={"vae": [1.0]})
    job = write_run(logs / "other" / "multiruns" / "s_2" / "0")
    (logs / "default" / "runs" / "empty_folder").mkdir()

    runs = find_runs([logs])

    # The old layout's tensorboard/{main,inference,training} are parts of a run, not runs.
    assert runs == [single.resolve(), job.resolve()]
    assert run_names(runs) == {
        single.resolve(): "default/runs/a_1",
        job.resolve(): "other/multiruns/s_2/0",
    }


def test_a_folder_with_event_files_but_no_hydra_folder_is_a_run(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run", overrides=None, losses={"vae": [1.0]})

    assert is_run_folder(run)
    assert not (run / ".hydra").exists()
    assert find_runs([run]) == [run.resolve()]
    assert run_names([run.resolve()]) == {run.resolve(): "run"}


def test_the_same_run_named_twice_is_listed_once(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    write_run(sweep / "0")
    write_run(sweep / "1")

    assert len(find_runs([sweep, sweep / "1", tmp_path])) == 2


def test_a_path_that_does_not_exist_is_named_in_the_error(tmp_path: Path) -> None:
    missing = tmp_path / "no_such_sweep"
    write_run(tmp_path / "run")

    with pytest.raises(NoRunsFound, match=re.escape(f"{missing}: no such folder")):
        find_runs([tmp_path / "run", missing])


def test_a_folder_without_runs_is_named_in_the_error(tmp_path: Path) -> None:
    (tmp_path / "logs" / "default").mkdir(parents=True)
    (tmp_path / "logs" / "notes.txt").write_text("not a run")

    with pytest.raises(NoRunsFound, match=r"logs: no run folder in it \(a run folder holds"):
        find_runs([tmp_path / "logs"])


def test_a_file_is_refused_naming_it(tmp_path: Path) -> None:
    file = tmp_path / "events.out.tfevents.1"
    file.write_bytes(b"")

    with pytest.raises(NoRunsFound, match=re.escape(f"{file}: not a folder")):
        find_runs([file])


def test_natural_order_puts_job_2_before_job_10() -> None:
    names = ["s/10", "s/2", "s/1", "r_9", "r_10"]

    assert sorted(names, key=natural_key) == ["r_9", "r_10", "s/1", "s/2", "s/10"]
