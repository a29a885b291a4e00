"""The checkpoint folder: names, the LATEST pointer, retention, stale partials, resolving."""

from __future__ import annotations

import errno
import gc
import logging
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import torch

from ami.checkpoints import store as store_module
from ami.checkpoints.file_format import (
    CheckpointError,
    CheckpointWriter,
    encode,
    read,
    write_file,
)
from ami.checkpoints.store import CheckpointStore, find_latest, resolve

NAME = re.compile(r"\d{4}-\d\d-\d\dT\d\d-\d\d-\d\d\.\d{6}Z-\d{4,}\.ckpt")


def save(store: CheckpointStore, value: float) -> Path:
    """Write and commit a checkpoint holding ``value``, as the main thread does."""
    path = store.new_path()
    write_file(path, {"value": torch.tensor(value)})
    store.commit(path)
    return path


def value_of(path: Path) -> float:
    return float(read(path)["value"])


def test_new_paths_are_time_stamped_and_sort_in_the_order_they_were_made(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path / "checkpoints")
    before = datetime.now(UTC).strftime("%Y-%m-%dT%H-%M-%S.%fZ")
    paths = []
    for _ in range(50):
        path = store.new_path()
        path.touch()
        paths.append(path)
    assert all(NAME.fullmatch(path.name) for path in paths)
    assert all(path.parent == tmp_path / "checkpoints" for path in paths)
    assert len(set(paths)) == 50
    assert sorted(paths, key=lambda p: p.name) == paths
    assert paths[0].name >= before
    assert paths[0].name.endswith("-0001.ckpt")
    later = CheckpointStore(tmp_path / "checkpoints").new_path()  # e.g. after a restart
    assert later.name > paths[-1].name


def test_new_paths_keep_their_order_when_the_clock_steps_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = CheckpointStore(tmp_path)
    first = store.new_path()
    first.touch()

    class SteppedBack(datetime):
        @classmethod
        def now(cls, tz: Any = None) -> Any:
            return datetime.now(tz) - timedelta(hours=1)

    monkeypatch.setattr(store_module, "datetime", SteppedBack)
    second = store.new_path()
    assert second.name > first.name


def test_commit_points_latest_at_the_file_and_keeps_the_newest_n(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path, keep_last=2)
    (tmp_path / "notes.txt").write_text("mine")
    (tmp_path / "hand-made.ckpt").write_bytes(b"mine too")
    paths = []
    for value in range(5):
        paths.append(save(store, value))
        assert store.latest() == paths[-1]
        assert (tmp_path / "LATEST").read_text() == paths[-1].name + "\n"
    assert sorted(tmp_path.iterdir()) == sorted(
        [*paths[-2:], tmp_path / "LATEST", tmp_path / "notes.txt", tmp_path / "hand-made.ckpt"]
    )
    assert value_of(store.latest() or tmp_path) == 4.0


def test_keep_last_none_keeps_every_checkpoint(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path, keep_last=None)
    paths = [save(store, value) for value in range(6)]
    assert all(path.exists() for path in paths)
    assert store.latest() == paths[-1]


def test_retention_never_deletes_the_checkpoint_latest_names(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path, keep_last=1)
    older = store.new_path()
    write_file(older, {"value": torch.tensor(1.0)})
    newer = store.new_path()
    write_file(newer, {"value": torch.tensor(2.0)})
    store.commit(older)
    assert older.exists() and newer.exists()
    assert store.latest() == older


@pytest.mark.parametrize("bad", [0, -1, True, 2.5, "3"])
def test_keep_last_must_be_none_or_a_positive_integer(tmp_path: Path, bad: Any) -> None:
    with pytest.raises(
        ValueError, match=r"^checkpoint\.keep_last=.*: must be null .* integer >= 1"
    ):
        CheckpointStore(tmp_path, keep_last=bad)


def test_commit_refuses_a_file_that_is_not_one_of_its_checkpoints(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path / "checkpoints")
    foreign = tmp_path / "elsewhere.ckpt"
    write_file(foreign, {"value": torch.tensor(1.0)})
    with pytest.raises(ValueError, match="not a checkpoint file of"):
        store.commit(foreign)
    with pytest.raises(FileNotFoundError, match="no such file"):
        store.commit(store.new_path())
    assert store.latest() is None


def test_latest_is_none_before_any_checkpoint(tmp_path: Path) -> None:
    assert CheckpointStore(tmp_path / "not yet").latest() is None
    assert CheckpointStore(tmp_path).latest() is None


def test_latest_falls_back_to_the_newest_file_when_latest_names_a_missing_one(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = CheckpointStore(tmp_path, keep_last=None)
    older, newer = save(store, 1.0), save(store, 2.0)
    newer.unlink()
    with caplog.at_level(logging.WARNING, logger="ami.checkpoints.store"):
        assert store.latest() == older
        assert store.latest() == older
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, "warned once, not on every status call"
    assert newer.name in warnings[0] and older.name in warnings[0]
    (tmp_path / "LATEST").unlink()
    assert store.latest() == older, "no pointer at all: the newest file"


def test_a_kill_mid_write_leaves_a_partial_that_the_next_start_removes(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = CheckpointStore(tmp_path)
    good = save(store, 1.0)
    path = store.new_path()
    writer = CheckpointWriter(path, encode({"value": torch.ones(10_000)}))
    assert not writer.advance(1000)
    partial = writer.partial
    del writer  # the process "dies": no abort, no rename
    gc.collect()
    assert partial.exists() and not path.exists()
    assert store.latest() == good

    restarted = CheckpointStore(tmp_path)
    with caplog.at_level(logging.INFO, logger="ami.checkpoints.store"):
        removed = restarted.remove_stale_partials()
    assert removed == [partial]
    assert not partial.exists()
    assert any(str(partial) in r.getMessage() for r in caplog.records)
    assert restarted.latest() == good
    assert value_of(good) == 1.0
    assert restarted.remove_stale_partials() == []


def test_a_failure_while_replacing_latest_leaves_the_old_pointer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = CheckpointStore(tmp_path)
    good = save(store, 1.0)
    path = store.new_path()
    write_file(path, {"value": torch.tensor(2.0)})

    def full_disk(*args: Any) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(store_module.os, "replace", full_disk)
    with pytest.raises(CheckpointError) as error:
        store.commit(path)
    monkeypatch.undo()
    assert str(error.value) == f"no space left on device while saving {tmp_path / 'LATEST'}"
    assert store.latest() == good
    assert not (tmp_path / "LATEST.partial").exists()


def test_resolve_accepts_a_file_a_checkpoint_folder_and_a_run_folder(tmp_path: Path) -> None:
    run = tmp_path / "runs" / "2026-01-01_00-00-00_1"
    store = CheckpointStore(run / "checkpoints", keep_last=None)
    save(store, 1.0)
    newest = save(store, 2.0)
    assert resolve(newest) == newest
    assert resolve(run / "checkpoints") == newest
    assert resolve(run) == newest
    pointer_only = tmp_path / "pointer_only"
    pointer_only.mkdir()
    newest_copy = pointer_only / newest.name
    newest_copy.write_bytes(newest.read_bytes())
    assert resolve(pointer_only) == newest_copy, "no LATEST: the newest file"


def absent(path: Path) -> Path:
    return path


def empty_folder(path: Path) -> Path:
    path.mkdir()
    return path


def run_of_an_older_version(path: Path) -> Path:
    (path / "checkpoints").mkdir(parents=True)
    torch.save({"format": 1}, path / "checkpoints" / "latest.pt")
    return path


@pytest.mark.parametrize(
    ("make", "why"),
    [
        (absent, "it does not exist"),
        (empty_folder, "it holds neither LATEST, *.ckpt files nor checkpoints/"),
        (
            run_of_an_older_version,
            "latest.pt is an older ami checkpoint (torch.save format); this version cannot read it",
        ),
    ],
)
def test_resolve_says_what_it_accepts_when_there_is_no_checkpoint(
    tmp_path: Path, make: Any, why: str
) -> None:
    source = make(tmp_path / "run")
    with pytest.raises(FileNotFoundError) as error:
        resolve(source)
    message = str(error.value)
    assert message.startswith(f"resume_from='{source}': no checkpoint there;")
    assert why in message
    assert "give a .ckpt file, a checkpoint folder" in message and "resume_from=latest" in message


def named(folder: Path, stamp: str, value: float) -> Path:
    """A checkpoint file with a chosen time stamp."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{stamp}-0001.ckpt"
    write_file(path, {"value": torch.tensor(value)})
    return path


def test_find_latest_takes_the_newest_complete_checkpoint_across_runs_and_multiruns(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    task = tmp_path / "logs" / "default"
    named(task / "runs/a/checkpoints", "2026-01-01T00-00-01.000000Z", 1.0)
    named(task / "runs/a/checkpoints", "2026-01-01T00-00-03.000000Z", 3.0)
    sweep = named(task / "multiruns/s/0/checkpoints", "2026-01-01T00-00-04.000000Z", 4.0)
    named(task / "multiruns/s/1/checkpoints", "2026-01-01T00-00-02.000000Z", 2.0)
    broken = named(task / "runs/b/checkpoints", "2026-01-01T00-00-05.000000Z", 5.0)
    data = bytearray(broken.read_bytes())
    data[-1] ^= 0xFF
    broken.write_bytes(bytes(data))
    (task / "runs/c/checkpoints").mkdir(parents=True)
    (task / "runs/c/checkpoints/2026-01-01T00-00-09.000000Z-0001.ckpt.partial").write_bytes(b"x")
    with caplog.at_level(logging.WARNING, logger="ami.checkpoints.store"):
        assert find_latest(task) == sweep
    assert value_of(sweep) == 4.0
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and str(broken) in warnings[0] and "checksum" in warnings[0]


def test_find_latest_names_the_task_folder_when_nothing_is_complete(tmp_path: Path) -> None:
    task = tmp_path / "default"
    with pytest.raises(
        FileNotFoundError, match=rf"no complete checkpoint under {re.escape(str(task))}"
    ):
        find_latest(task)
    broken = named(task / "runs/a/checkpoints", "2026-01-01T00-00-01.000000Z", 1.0)
    broken.write_bytes(broken.read_bytes()[:-3])
    with pytest.raises(FileNotFoundError, match=r"1 broken one\(s\) skipped"):
        find_latest(task)
