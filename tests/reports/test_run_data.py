import json
from pathlib import Path

from reports.fake_runs import event_file, write_run

from ami.reports import read_run
from ami.reports.run_data import parse_overrides


def test_overrides_outcome_and_reason_are_read(tmp_path: Path) -> None:
    run = write_run(
        tmp_path / "run",
        overrides=["model.trainers.dynamics.lr=0.001", "buffer=sequential"],
        outcome="failed",
        reason="RuntimeError: training thread failed",
    )

    data = read_run(run)

    assert data.overrides == {"model.trainers.dynamics.lr": "0.001", "buffer": "sequential"}
    assert data.outcome == "failed"
    assert data.status == "failed"
    assert data.reason == "RuntimeError: training thread failed"
    assert data.problems == []


def test_a_run_without_outcome_json_is_unknown(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run", outcome=None, losses={"dynamics": [1.0]})

    data = read_run(run)

    assert data.status == "unknown"
    assert data.events.scalars["training/dynamics/loss"].last == 1.0


def test_overrides_come_from_outcome_json_when_hydras_copy_is_missing(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run", overrides=["seed=3"])
    (run / ".hydra" / "overrides.yaml").unlink()

    assert read_run(run).overrides == {"seed": "3"}


def test_a_damaged_outcome_json_makes_the_run_unreadable_naming_the_file(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run", overrides=["seed=1"], losses={"dynamics": [2.0]})
    (run / "outcome.json").write_text('{"outcome": "compl')

    data = read_run(run)

    assert data.status.startswith("unreadable: outcome.json: not JSON")
    # What the other files hold is still read.
    assert data.overrides == {"seed": "1"}
    assert data.events.scalars["training/dynamics/loss"].last == 2.0


def test_an_outcome_outside_the_contract_is_refused_naming_the_accepted_ones(
    tmp_path: Path,
) -> None:
    run = write_run(tmp_path / "run")
    (run / "outcome.json").write_text(json.dumps({"outcome": "great"}))

    assert read_run(run).status == (
        "unreadable: outcome.json: outcome 'great' is not one of completed, failed, interrupted"
    )


def test_a_damaged_event_file_makes_the_run_unreadable_naming_the_file(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run", overrides=["seed=1"], losses={"dynamics": [1.0] * 100})
    path = event_file(run, "training")
    damaged = bytearray(path.read_bytes())
    damaged[len(damaged) // 2] ^= 0xFF
    path.write_bytes(bytes(damaged))

    data = read_run(run)

    assert data.status.startswith(f"unreadable: tensorboard/{path.name}: the record at byte")
    assert data.outcome == "completed"
    assert data.overrides == {"seed": "1"}


def test_overrides_that_add_force_or_delete_keys_are_keyed_by_the_key() -> None:
    parsed = parse_overrides(["+a.b=1", "++c=x=y", "~d", "e=", "model=vae"])

    assert parsed == {"a.b": "1", "c": "x=y", "d": "(deleted)", "e": "", "model": "vae"}


def test_without_outcome_json_the_outcome_code_scalar_tells_the_outcome(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run", outcome=None, final={"run/outcome_code": 1.0})

    assert read_run(run).status == "interrupted"


def test_with_only_event_files_the_overrides_come_from_the_overrides_hparam(
    tmp_path: Path,
) -> None:
    hparams = {"overrides": "buffer=sequential model.trainers.dynamics.lr=0.001", "seed": 0}
    run = write_run(tmp_path / "run", overrides=None, outcome=None, hparams=hparams)

    assert read_run(run).overrides == {
        "buffer": "sequential",
        "model.trainers.dynamics.lr": "0.001",
    }
