"""Faults end to end: a full disk, a thread dying in its cleanup, a hung trainer, a slow pause.

Each runs the three real threads with the control API on a loopback port and checks
what ``/api/status`` says while it happens, the exit code and the log.
"""

from __future__ import annotations

import builtins
import contextlib
import errno
import io
import logging
import os
import pathlib
import shutil
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from runtime_parts import (
    DEADLINE,
    Client,
    GatedTrainer,
    Runtime,
    ScriptedWorld,
    build_runtime,
    run_with,
    wait_for,
)

from ami.checkpoints import CheckpointStore, read
from ami.interaction.environment import WorldEnded
from ami.interaction.spaces import Observation
from ami.threads import InferenceThread, TrainingThread

pytestmark = [pytest.mark.usefixtures("keep_main_thread_name"), pytest.mark.timeout(120)]


def test_a_hung_trainer_is_reported_hung_and_stops_the_run_with_exit_1(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    trainer = GatedTrainer(hold_at_step=3)
    # No max_uptime: only the hang check can wake the main thread and stop this run.
    runtime = build_runtime(
        tmp_path, trainer=trainer, api=True, max_uptime=None, hang_timeout=1.0, stop_timeout=60
    )
    seen: dict[str, Any] = {}

    def script(client: Client) -> None:
        assert trainer.entered.wait(DEADLINE)
        body = client.wait_for_status(
            lambda b: b["threads"]["training"]["state"] == "hung", "training is reported hung"
        )
        seen.update(body)
        trainer.release.set()  # let the stuck step end so the thread can finish

    with caplog.at_level(logging.INFO):
        code = run_with(runtime, script)
    assert code == 1
    training = seen["threads"]["training"]
    assert training["alive"] is True, "hung, not dead"
    assert training["seconds_since_heartbeat"] >= 1.0
    assert "compute_loss" in training["hung_at"], "where it is stuck: the test's gate"
    assert seen["threads"]["inference"]["state"] in ("running", "idle", "stopping", "finished")
    assert seen["status"] == "stopping"
    (report,) = [r for r in caplog.records if "is hung" in r.getMessage()]
    message = report.getMessage()
    assert report.levelno == logging.ERROR
    assert "thread training is hung: no heartbeat for" in message
    assert "threads.hang_timeout=1.0" in message and "while running" in message
    assert "compute_loss" in message, "its stack is in the log"
    assert "max_uptime" not in caplog.text
    assert not runtime.training.thread.is_alive(), "it finished once released"


def test_a_pause_during_a_long_optimizer_step_reports_pausing_until_the_step_ends(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    trainer = GatedTrainer(hold_at_step=3)
    runtime = build_runtime(
        tmp_path, trainer=trainer, api=True, max_uptime=None, hang_timeout=None, max_pending=5
    )

    def script(client: Client) -> None:
        assert trainer.entered.wait(DEADLINE)
        # Training is held, inference goes on: the hand-off fills up and drops steps.
        body = client.wait_for_status(lambda b: b["collector"]["dropped"] > 0, "steps drop")
        assert body["collector"]["pending"] == 5
        assert body["collector"]["appended"] > 5
        paused = client.call("POST", "/api/pause")
        assert paused["acknowledged"] is False, "training is still in its step"
        assert paused["status"] == "pausing"
        body = client.wait_for_status(
            lambda b: b["threads"]["inference"]["state"] == "parked", "inference parks"
        )
        assert body["status"] == "pausing", "one thread parked is not a paused system"
        assert body["threads"]["training"]["state"] == "running"
        steps = trainer.global_step
        trainer.release.set()
        body = client.wait_for_status(lambda b: b["status"] == "paused", "both threads park")
        assert body["threads"]["training"]["state"] == "parked"
        assert trainer.global_step == steps + 1, "the step ended, then the thread parked"
        assert client.call("POST", "/api/resume")["status"] in ("resuming", "active")
        client.wait_for_status(lambda s: s["status"] == "active", "both threads left the park")
        wait_for(lambda: trainer.global_step > steps + 1, "training goes on")
        assert client.call("POST", "/api/shutdown")["status"] == "stopping"

    with caplog.at_level(logging.INFO):
        assert run_with(runtime, script) == 0
    (summary,) = [r.getMessage() for r in caplog.records if r.getMessage().startswith("stopped:")]
    assert "collector {'appended':" in summary and "'dropped':" in summary
    assert "'state': 'finished'" in summary


class WorldThatEnds(ScriptedWorld):
    def observe(self) -> Observation:
        if self.steps >= 10:
            raise WorldEnded("the video is over (scripted)")
        return super().observe()


class InferenceDyingInCleanup(InferenceThread):
    """An inference thread whose teardown raises, and whose TensorBoard close does too."""

    def on_start(self) -> None:
        super().on_start()
        close = self.metrics.close

        def failing_close() -> None:
            close()
            raise OSError(errno.EIO, "event file close failed (scripted)")

        self.metrics.close = failing_close  # type: ignore[method-assign]

    def on_finally(self) -> None:
        super().on_finally()
        raise RuntimeError("teardown broke (scripted)")


def test_a_thread_that_dies_in_its_cleanup_still_stops_the_run(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    gate = threading.Event()

    class TrainingHeldAtStop(TrainingThread):
        """Keeps the stop going until the test has looked at the status."""

        def on_finally(self) -> None:
            assert gate.wait(DEADLINE)
            super().on_finally()

    runtime = build_runtime(
        tmp_path,
        world=WorldThatEnds(),
        api=True,
        max_uptime=DEADLINE,
        inference_cls=InferenceDyingInCleanup,
        training_cls=TrainingHeldAtStop,
    )
    seen: dict[str, Any] = {}

    def script(client: Client) -> None:
        body = client.wait_for_status(
            lambda b: not b["threads"]["inference"]["alive"], "inference is reported dead"
        )
        seen.update(body)
        gate.set()

    with caplog.at_level(logging.INFO):
        code = run_with(runtime, script)
    assert code == 1, "a failed cleanup fails the run"
    inference = seen["threads"]["inference"]
    assert inference["state"] == "failed"
    assert "teardown broke" in inference["error"]
    assert seen["status"] == "stopping"
    assert seen["threads"]["training"]["alive"] is True, "training is still stopping"
    assert "max_uptime" not in caplog.text, "the thread's end stopped the run"
    assert len(runtime.inference.cleanup_errors) == 2
    assert runtime.main.status()["threads"]["training"]["state"] == "finished"


# --- disk full -----------------------------------------------------------------------


class Disk:
    """Everything written under ``root`` lands on a disk that the test can fill."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.full = threading.Event()

    def holds(self, path: object) -> bool:
        return isinstance(path, str | os.PathLike) and Path(path).is_relative_to(self.root)

    def refuse(self, path: object) -> OSError:
        return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))


class DiskFile(io.RawIOBase):
    """A real file whose writes fail with ENOSPC once its disk is full."""

    def __init__(self, disk: Disk, raw: Any) -> None:
        self.disk = disk
        self.raw = raw

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        if self.disk.full.is_set():
            raise self.disk.refuse(self.raw.name)
        written: int = self.raw.write(data)
        return written

    def close(self) -> None:
        self.raw.close()
        super().close()


@contextlib.contextmanager
def full_disk_under(root: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Disk]:
    """Route file writes under ``root`` (Python's and torch.save's) through a fillable disk."""
    disk = Disk(root)
    real_open = pathlib.Path.open
    real_save = torch.save

    def path_open(self: Path, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        if "w" in mode and "b" in mode and disk.holds(self):
            return io.BufferedWriter(DiskFile(disk, builtins.open(self, "wb", buffering=0)))
        return real_open(self, mode, *args, **kwargs)

    def save(obj: object, f: Any, *args: Any, **kwargs: Any) -> None:
        if disk.full.is_set() and disk.holds(f):
            with builtins.open(f, "wb") as partial:  # what fitted before the disk filled
                partial.write(b"PK\x03\x04 half a checkpoint")
            raise disk.refuse(f)
        real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(pathlib.Path, "open", path_open)
    monkeypatch.setattr(torch, "save", save)
    yield disk


def previous_checkpoint(tmp_path: Path) -> tuple[Path, bytes]:
    """A checkpoint written by an earlier run, and its bytes."""
    first = build_runtime(
        tmp_path / "first", api=True, max_uptime=None, checkpoint_dir=tmp_path / "ckpt"
    )
    code = run_with(first, lambda client: _shut_down_after_a_run(client, first))
    assert code == 0
    path = CheckpointStore(tmp_path / "ckpt").latest()
    assert path is not None
    return path, path.read_bytes()


def _shut_down_after_a_run(client: Client, runtime: Runtime) -> None:
    wait_for(lambda: runtime.trainer.runs >= 1, "a training run")
    client.call("POST", "/api/shutdown")


def check_disk_full_run(
    runtime: Runtime, run_dir: Path, fill: Callable[[], None], caplog: pytest.LogCaptureFixture
) -> None:
    def script(client: Client) -> None:
        wait_for(lambda: runtime.trainer.runs >= 1, "a training run")
        fill()

    with caplog.at_level(logging.INFO):
        code = run_with(runtime, script)
    assert code == 1
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    clear = [m for m in errors if "no space left on device" in m and str(run_dir / "tb") in m]
    assert clear, "\n".join(errors)
    assert "max_uptime" not in caplog.text, "the failure stopped the run"
    status = runtime.main.status()
    assert status["status"] == "stopped"
    assert not any(t["alive"] for t in status["threads"].values())


def test_a_full_disk_stops_the_run_with_exit_1_and_keeps_the_last_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    checkpoint, saved = previous_checkpoint(tmp_path)
    with full_disk_under(tmp_path, monkeypatch) as disk:
        runtime = build_runtime(
            tmp_path / "run", api=True, max_uptime=DEADLINE, checkpoint_dir=checkpoint.parent
        )
        check_disk_full_run(runtime, tmp_path / "run", disk.full.set, caplog)
    assert checkpoint.read_bytes() == saved, "the previous checkpoint is intact"
    assert CheckpointStore(checkpoint.parent).latest() == checkpoint, "and still the latest"
    read(checkpoint)


@pytest.fixture
def tiny_tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs, for a disk that really fills up; skipped where mounting is not allowed."""
    mount_point = tmp_path / "tmpfs"
    mount_point.mkdir()
    if shutil.which("mount") is None or os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root and mount(8)")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield mount_point
    finally:
        if subprocess.run(["umount", str(mount_point)], capture_output=True).returncode:
            subprocess.run(["umount", "-l", str(mount_point)], capture_output=True)


def fill_up(directory: Path) -> None:
    """Write a file until the file system refuses more."""
    with (directory / "filler").open("wb", buffering=0) as filler, contextlib.suppress(OSError):
        while True:
            filler.write(b"\0" * 65536)


def test_a_really_full_disk_stops_the_run_with_exit_1_and_keeps_the_last_checkpoint(
    tiny_tmpfs: Path, caplog: pytest.LogCaptureFixture
) -> None:
    checkpoint, saved = previous_checkpoint(tiny_tmpfs)
    runtime = build_runtime(
        tiny_tmpfs / "run", api=True, max_uptime=DEADLINE, checkpoint_dir=checkpoint.parent
    )
    check_disk_full_run(runtime, tiny_tmpfs / "run", lambda: fill_up(tiny_tmpfs), caplog)
    assert checkpoint.read_bytes() == saved, "the previous checkpoint is intact"
    assert CheckpointStore(checkpoint.parent).latest() == checkpoint, "and still the latest"
    read(checkpoint)
