"""A TensorBoard event-file writer that runs on its owner's thread.

``torch.utils.tensorboard.SummaryWriter`` starts a writer thread of its own; this
runtime has exactly three threads, so each of them writes its own event file
(``tensorboard/<thread>/``) here instead. A record is a few hundred bytes appended to a
buffered file; the file is flushed every ``flush_seconds`` from the writing thread.

A write that the disk refuses (full, gone read-only) raises an :class:`OSError` that
keeps its errno and names the event file and the reason, e.g. ``... no space left on
device``: the thread's failure log then says what to fix. :meth:`EventWriter.close`
releases the file even when its last flush fails.

Example:
    >>> writer = EventWriter(log_dir / "tensorboard" / "inference")  # doctest: +SKIP
    >>> writer.scalar("inference/step_interval", 0.1, step=1)       # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import cv2
import numpy as np
import torch
from tensorboard.compat.proto.event_pb2 import Event
from tensorboard.compat.proto.summary_pb2 import Summary
from tensorboard.summary.writer.record_writer import RecordWriter
from torch.utils.tensorboard import summary as tb_summary

from ami.sharing import Owned, writes


class EventWriter(Owned):
    """Scalars, images, text and hyper-parameters into one event file.

    Args:
        log_dir: Folder of the event file (one TensorBoard "run").
        flush_seconds: Longest time a record may sit in memory before it reaches disk
            while its thread keeps writing (an idle thread flushes before it waits).
    """

    def __init__(self, log_dir: Path | str, flush_seconds: float = 2.0) -> None:
        log_dir = Path(log_dir)
        super().__init__(f"tensorboard:{log_dir.name}")
        log_dir.mkdir(parents=True, exist_ok=True)
        stamp = time.time()
        self.path = log_dir / f"events.out.tfevents.{stamp:.6f}.{socket.gethostname()}"
        with self._disk_errors("creating"):
            self._file = self.path.open("wb")
        self._records = RecordWriter(self._file)
        self._flush_seconds = flush_seconds
        self._last_flush = time.monotonic()
        self._dirty = False
        try:
            self._write(Event(wall_time=stamp, file_version="brain.Event:2"))
            self.flush()
        except BaseException:
            with contextlib.suppress(OSError):
                self._file.close()
            raise

    @writes
    def scalar(self, tag: str, value: float, step: int) -> None:
        """One number for a chart."""
        summary = Summary(value=[Summary.Value(tag=tag, simple_value=float(value))])
        self._write_summary(summary, step)

    @writes
    def scalars(self, values: Mapping[str, float], step: int) -> None:
        """Several numbers at one step, in one record."""
        summary = Summary(
            value=[Summary.Value(tag=tag, simple_value=float(v)) for tag, v in values.items()]
        )
        self._write_summary(summary, step)

    @writes
    def image(self, tag: str, image: torch.Tensor, step: int) -> None:
        """An RGB image, ``(3, H, W)`` float in ``[0, 1]``, stored as PNG."""
        if image.dim() != 3 or image.shape[0] != 3:
            raise ValueError(f"{tag}: an image must be (3, H, W), got {tuple(image.shape)}")
        array = image.detach().float().clamp(0, 1).mul(255).round().byte().cpu().numpy()
        array = np.ascontiguousarray(array.transpose(1, 2, 0)[:, :, ::-1])  # RGB -> BGR for cv2
        ok, png = cv2.imencode(".png", array)
        if not ok:
            raise ValueError(f"{tag}: OpenCV could not encode a {tuple(image.shape)} image")
        height, width = array.shape[:2]
        encoded = Summary.Image(
            height=height, width=width, colorspace=3, encoded_image_string=png.tobytes()
        )
        self._write_summary(Summary(value=[Summary.Value(tag=tag, image=encoded)]), step)

    @writes
    def text(self, tag: str, text: str, step: int = 0) -> None:
        """Markdown text, shown in TensorBoard's text tab."""
        self._write_summary(tb_summary.text(tag, text), step)  # type: ignore[no-untyped-call]

    @writes
    def hparams(self, hparams: Mapping[str, float | int | str | bool]) -> None:
        """Experiment settings for the hparams tab."""
        for summary in tb_summary.hparams(dict(hparams), {}):  # type: ignore[no-untyped-call]
            self._write_summary(summary, 0)

    @writes
    def flush(self) -> None:
        """Push buffered records to disk.

        Writes flush by themselves every ``flush_seconds``; a thread about to sit idle
        calls this so its last records do not wait for its next write.
        """
        if self._dirty:
            with self._disk_errors("flushing"):
                self._records.flush()
            self._dirty = False
        self._last_flush = time.monotonic()

    @writes
    def close(self) -> None:
        """Flush and close; later writes fail.

        The file is closed even if the flush fails (the records it held are lost
        either way); the flush's error is raised after that.
        """
        if self._file.closed:
            return
        try:
            with self._disk_errors("closing"):
                self._records.flush()
        finally:
            with contextlib.suppress(OSError):  # the same refusal again, already raised
                self._file.close()

    def _write_summary(self, summary: Summary, step: int) -> None:
        self._write(Event(wall_time=time.time(), step=step, summary=summary))

    def _write(self, event: Event) -> None:
        with self._disk_errors("writing"):
            self._records.write(event.SerializeToString())
        self._dirty = True
        if time.monotonic() - self._last_flush >= self._flush_seconds:
            self.flush()

    @contextlib.contextmanager
    def _disk_errors(self, doing: str) -> Iterator[None]:
        """Re-raise an OS error naming this event file and the reason in words."""
        try:
            yield
        except OSError as error:
            reason = os.strerror(error.errno).lower() if error.errno else str(error)
            raise OSError(
                error.errno, f"TensorBoard event file {self.path}: {reason} (while {doing})"
            ) from error
