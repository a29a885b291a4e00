"""A TensorBoard event-file writer that runs on its owner's thread.

``torch.utils.tensorboard.SummaryWriter`` starts a writer thread of its own; this
runtime has exactly three threads, so each of them writes its own event file
(``tensorboard/<thread>/``) here instead. A record is a few hundred bytes appended to a
buffered file; the file is flushed every ``flush_seconds`` from the writing thread.

Example:
    >>> writer = EventWriter(log_dir / "tensorboard" / "inference")  # doctest: +SKIP
    >>> writer.scalar("inference/step_interval", 0.1, step=1)       # doctest: +SKIP
"""

from __future__ import annotations

import socket
import time
from collections.abc import Mapping
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
        self._file = self.path.open("wb")
        self._records = RecordWriter(self._file)
        self._flush_seconds = flush_seconds
        self._last_flush = time.monotonic()
        self._dirty = False
        self._write(Event(wall_time=stamp, file_version="brain.Event:2"))
        self.flush()

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
            self._records.flush()
            self._dirty = False
        self._last_flush = time.monotonic()

    @writes
    def close(self) -> None:
        """Flush and close; later writes fail."""
        if not self._file.closed:
            self._records.flush()
            self._file.close()

    def _write_summary(self, summary: Summary, step: int) -> None:
        self._write(Event(wall_time=time.time(), step=step, summary=summary))

    def _write(self, event: Event) -> None:
        self._records.write(event.SerializeToString())
        self._dirty = True
        if time.monotonic() - self._last_flush >= self._flush_seconds:
            self.flush()
