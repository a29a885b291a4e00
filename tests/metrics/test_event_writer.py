import errno
import io
import os
import threading
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.backend.event_processing.plugin_event_multiplexer import EventMultiplexer
from tensorboard.compat.proto.summary_pb2 import Summary
from tensorboard.summary.writer.record_writer import RecordWriter

from ami.metrics import EventWriter
from ami.sharing import OwnershipError


def load(log_dir: Path) -> EventAccumulator:
    accumulator = EventAccumulator(str(log_dir), size_guidance={"images": 0, "scalars": 0})
    accumulator.Reload()
    return accumulator


def test_scalars_images_and_text_are_read_back_by_tensorboard(tmp_path: Path) -> None:
    writer = EventWriter(tmp_path / "tb")
    for step in range(1, 6):
        writer.scalar("inference/step_interval", 0.1 * step, step)
    writer.scalars({"training/t/loss": 2.0, "training/t/grad_norm": 3.0}, step=7)
    image = torch.zeros(3, 8, 12)
    image[0] = 1.0  # pure red
    writer.image("images/panel", image, step=3)
    writer.text("config/parameters", "| model | 10 |")
    writer.close()

    events = load(tmp_path / "tb")
    tags = events.Tags()
    assert {"inference/step_interval", "training/t/loss", "training/t/grad_norm"} <= set(
        tags["scalars"]
    )
    values = [(e.step, round(e.value, 6)) for e in events.Scalars("inference/step_interval")]
    assert values == [(1, 0.1), (2, 0.2), (3, 0.3), (4, 0.4), (5, 0.5)]
    assert events.Scalars("training/t/loss")[0].value == 2.0
    (img,) = events.Images("images/panel")
    assert (img.width, img.height, img.step) == (12, 8, 3)
    decoded = cv2.imdecode(np.frombuffer(img.encoded_image_string, np.uint8), cv2.IMREAD_COLOR)
    assert decoded[0, 0].tolist() == [0, 0, 255], "stored as RGB (BGR in OpenCV's order)"
    assert "config/parameters/text_summary" in tags["tensors"]


def test_records_reach_disk_after_flush_interval(tmp_path: Path) -> None:
    writer = EventWriter(tmp_path, flush_seconds=0.0)
    writer.scalar("x", 1.0, 1)
    assert [e.value for e in load(tmp_path).Scalars("x")] == [1.0]
    writer.close()


def test_only_the_owning_thread_writes(tmp_path: Path) -> None:
    writer = EventWriter(tmp_path)
    errors: list[BaseException] = []

    def other() -> None:
        try:
            writer.scalar("x", 1.0, 1)
        except OwnershipError as error:
            errors.append(error)

    thread = threading.Thread(target=other, name="training")
    thread.start()
    thread.join(2)
    assert len(errors) == 1
    writer.close()


def test_bad_image_shape_fails_clearly(tmp_path: Path) -> None:
    writer = EventWriter(tmp_path)
    with pytest.raises(ValueError, match=r"bad: an image must be \(3, H, W\), got \(5, 4\)"):
        writer.image("bad", torch.zeros(5, 4), step=0)
    writer.close()


class FullDisk(io.RawIOBase):
    """A file on a disk that is full: every write is refused with ENOSPC."""

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def fill_disk(writer: EventWriter) -> None:
    """From now on the writer's file refuses writes, as a full disk would."""
    writer._file = io.BufferedWriter(FullDisk())
    writer._records = RecordWriter(writer._file)


def test_a_full_disk_fails_with_an_error_naming_the_event_file(tmp_path: Path) -> None:
    writer = EventWriter(tmp_path, flush_seconds=0.0)
    fill_disk(writer)
    with pytest.raises(OSError, match="no space left on device") as failure:
        writer.scalar("x", 1.0, 1)
    assert failure.value.errno == errno.ENOSPC, "the errno survives for callers that check it"
    assert str(writer.path) in str(failure.value)
    assert isinstance(failure.value.__cause__, OSError)


def test_close_releases_the_file_even_when_its_last_flush_is_refused(tmp_path: Path) -> None:
    writer = EventWriter(tmp_path)  # records wait in memory for the next flush
    fill_disk(writer)
    writer.scalar("x", 1.0, 1)
    with pytest.raises(OSError, match=r"no space left on device \(while closing\)"):
        writer.close()
    assert writer._file.closed
    writer.close()  # closing again is a no-op, not a second failure


def test_the_threads_files_share_one_folder_that_tensorboard_reads_as_one_run(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "run" / "tensorboard"
    writers = [EventWriter(folder, suffix=name) for name in ("main", "inference", "training")]
    for writer in writers:
        writer.scalar(f"{writer.path.suffix[1:]}/x", 1.0, step=1)
        writer.close()
    names = sorted(path.name for path in folder.iterdir())
    assert sorted(name.rsplit(".", 1)[1] for name in names) == ["inference", "main", "training"]
    assert all(name.startswith("events.out.tfevents.") for name in names)
    assert len(set(names)) == 3

    runs = EventMultiplexer().AddRunsFromDirectory(str(tmp_path))
    runs.Reload()
    run = str(Path("run") / "tensorboard")
    assert list(runs.Runs()) == [run], "one run, not three"
    scalars = runs.PluginRunToTagToContent("scalars")
    assert sorted(scalars[run]) == ["inference/x", "main/x", "training/x"]


def test_writers_with_the_same_suffix_in_one_folder_do_not_collide(tmp_path: Path) -> None:
    first = EventWriter(tmp_path, suffix="main")
    second = EventWriter(tmp_path, suffix="main")
    assert first.path != second.path, "the time stamp tells them apart"
    first.close()
    second.close()


@pytest.mark.parametrize("suffix", ["", "a/b", "main thread", ".main"])
def test_a_suffix_that_is_not_a_plain_name_is_refused(tmp_path: Path, suffix: str) -> None:
    with pytest.raises(ValueError, match=r"suffix=.*: use letters, digits, '_' and '-'"):
        EventWriter(tmp_path, suffix=suffix)


def test_a_prepared_summary_is_written_at_its_step(tmp_path: Path) -> None:
    writer = EventWriter(tmp_path)
    writer.summary(Summary(value=[Summary.Value(tag="x", simple_value=4.0)]), step=9)
    writer.close()
    assert [(e.step, e.value) for e in load(tmp_path).Scalars("x")] == [(9, 4.0)]
