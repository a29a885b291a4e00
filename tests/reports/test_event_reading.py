import re
from pathlib import Path

import numpy as np
import pytest
from reports.fake_runs import event_file, write_run, writer

from ami.reports.event_reading import DamagedEventFile, read_events


def test_every_scalar_is_read_not_a_sample(tmp_path: Path) -> None:
    losses = [1.0 / step for step in range(1, 3001)]
    run = write_run(tmp_path / "run", losses={"dynamics": losses})

    series = read_events(run / "tensorboard").scalars["training/dynamics/loss"]

    assert len(series) == 3000
    assert series.steps.tolist() == list(range(1, 3001))
    np.testing.assert_allclose(series.values, losses, rtol=1e-6)  # stored as float32


def test_the_three_thread_files_of_one_folder_merge_into_one_set_of_charts(
    tmp_path: Path,
) -> None:
    run = write_run(
        tmp_path / "run",
        losses={"dynamics": [3.0, 2.0]},
        cells=[1, 2, 2, 5],
        final={"run/uptime_seconds": 12.5},
    )

    data = read_events(run / "tensorboard")

    assert data.files == 3
    assert data.scalars["training/dynamics/loss"].values.tolist() == [3.0, 2.0]
    assert data.scalars["inference/world/cells_visited"].last == 5.0
    assert data.scalars["run/uptime_seconds"].last == 12.5
    assert data.scalars["run/uptime_seconds"].steps.tolist() == [4]
    assert data.truncated == []


def test_the_older_layout_with_a_subfolder_per_thread_is_read(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run", losses={"vae": [4.0, 3.0, 2.0]}, cells=[1, 3], layout="old")
    assert sorted(p.name for p in (run / "tensorboard").iterdir()) == [
        "inference",
        "main",
        "training",
    ]

    data = read_events(run / "tensorboard")

    assert data.files == 3
    assert data.scalars["training/vae/loss"].values.tolist() == [4.0, 3.0, 2.0]
    assert data.scalars["inference/world/cells_visited"].values.tolist() == [1.0, 3.0]


def test_hparams_come_from_the_runs_hparams_summary(tmp_path: Path) -> None:
    hparams = {"model.trainers.dynamics.lr": 0.0003, "choice/model": "world_model", "amp": True}
    run = write_run(tmp_path / "run", hparams=hparams)

    data = read_events(run / "tensorboard")

    assert data.hparams["model.trainers.dynamics.lr"] == pytest.approx(0.0003)
    assert data.hparams["choice/model"] == "world_model"
    assert data.hparams["amp"] == 1.0  # torch's hparams() stores a bool as a number


def test_a_flipped_byte_in_an_event_file_is_damage_named_with_the_file(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run", losses={"dynamics": [1.0] * 200})
    path = event_file(run, "training")
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))

    with pytest.raises(
        DamagedEventFile, match=re.escape(path.name) + r": the record at byte \d+ fails"
    ):
        read_events(run / "tensorboard")


def test_a_file_that_is_not_an_event_file_is_damage(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run")
    (run / "tensorboard" / "events.out.tfevents.1.host.extra").write_bytes(b"not events " * 20)

    with pytest.raises(DamagedEventFile, match=re.escape("events.out.tfevents.1.host.extra")):
        read_events(run / "tensorboard")


def test_a_file_cut_off_mid_record_keeps_the_records_before_the_cut(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run", losses={"dynamics": [float(i) for i in range(100)]})
    path = event_file(run, "training")
    path.write_bytes(path.read_bytes()[:-7])  # a killed run's last, half-written record

    data = read_events(run / "tensorboard")

    assert data.scalars["training/dynamics/loss"].values.tolist() == [float(i) for i in range(99)]
    assert data.truncated == [path.name]


def test_wall_times_bound_the_run(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run", step_times=[(1, 1000.0), (50, 1010.0), (101, 1020.0)])

    data = read_events(run / "tensorboard")

    assert data.first_wall_time is not None and data.first_wall_time <= 1000.0
    assert data.last_wall_time is not None and data.last_wall_time > 1020.0  # now, at close
    assert data.scalars["inference/step_interval"].wall_times.tolist() == [1000.0, 1010.0, 1020.0]


def test_the_first_hparams_summary_counts_as_tensorboard_keeps_the_first(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run", hparams={"seed": 1})
    later = writer(run / "tensorboard", "late", "one")
    later.hparams({"seed": 2})
    later.close()

    assert read_events(run / "tensorboard").hparams == {"seed": 1.0}
