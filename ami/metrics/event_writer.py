"""A TensorBoard event-file writer that runs on its owner's thread.

``torch.utils.tensorboard.SummaryWriter`` starts a writer thread of its own; this
runtime has exactly three threads, so each of them writes its own event file here
instead. The three files share the run's one ``tensorboard/`` folder, told apart by
their suffix (``events.out.tfevents.<stamp>.<host>.<thread>``): TensorBoard merges the
event files of a folder into one run. While a run is still writing, TensorBoard's
default loader (``--load_fast=auto``, the Rust data server) follows every file of the
folder; the Python loader (``--load_fast=false``) follows only the newest-named one
unless started with ``--reload_multifile=true`` (a finished run reads whole either way).

A record is a few hundred bytes appended to a buffered file; the file is flushed every
``flush_seconds`` from the writing thread.

A write that the disk refuses (full, gone read-only) raises an :class:`OSError` that
keeps its errno and names the event file and the reason, e.g. ``... no space left on
device``: the thread's failure log then says what to fix. :meth:`EventWriter.close`
releases the file even when its last flush fails.

Example:
    >>> writer = EventWriter(run_dir / "tensorboard", suffix="inference")  # doctest: +SKIP
    >>> writer.scalar("inference/step_interval", 0.1, step=1)  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import os
import re
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

from ami.metrics.hparams import HParamValue, session_end_summary, session_start_summary
from ami.sharing import Owned, writes

_SUFFIX = re.compile(r"[A-Za-z0-9_-]+")


class EventWriter(Owned):
    """Scalars, images, text, the run's HParams row and layouts into one event file.

    Args:
        log_dir: Folder of the event file (one TensorBoard "run").
        flush_seconds: Longest time a record may sit in memory before it reaches disk
            while its thread keeps writing (an idle thread flushes before it waits).
        suffix: Appended to the file name (``events.out.tfevents.<stamp>.<host>.<suffix>``)
            so that several writers share one folder (one run) without colliding and a
            reader can tell their files apart, e.g. the thread's name. Letters, digits,
            ``_`` and ``-`` only.
    """

    def __init__(
        self, log_dir: Path | str, flush_seconds: float = 2.0, suffix: str | None = None
    ) -> None:
        log_dir = Path(log_dir)
        if suffix is not None and not _SUFFIX.fullmatch(suffix):
            raise ValueError(
                f"EventWriter suffix={suffix!r}: use letters, digits, '_' and '-' "
                "(it becomes the end of the event file's name)"
            )
        super().__init__(f"tensorboard:{suffix or log_dir.name}")
        log_dir.mkdir(parents=True, exist_ok=True)
        stamp = time.time()
        name = f"events.out.tfevents.{stamp:.6f}.{socket.gethostname()}"
        self.path = log_dir / (name if suffix is None else f"{name}.{suffix}")
        with self._disk_errors("creating"):
            self._file = self.path.open("wb")
        self._records = RecordWriter(self._file)
        self._flush_seconds = flush_seconds
        self._last_flush = time.monotonic()
        self._dirty = False
        self._hparams_started = False
        self._hparams_ended = False
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
    def summary(self, summary: Summary, step: int = 0) -> None:
        """A prepared summary, e.g. :func:`ami.metrics.layout_summary`'s."""
        self._write_summary(summary, step)

    @writes
    def hparams(self, hparams: Mapping[str, HParamValue]) -> None:
        """Open this run's row of the HParams tab with its settings (once, at the start).

        TensorBoard keeps a run's first row and ignores later ones, so a second call is
        refused rather than silently lost; the outcome comes at the end, through
        :meth:`hparams_end`. See :mod:`ami.metrics.hparams`.

        Raises:
            RuntimeError: This writer has written the hparams already.
            TypeError: A value is not a bool, number or string.
        """
        if self._hparams_started:
            raise RuntimeError(
                f"{self.path}: the hparams are written once per run (TensorBoard "
                "ignores a second set); write the outcome with hparams_end()"
            )
        self._write_summary(session_start_summary(hparams), 0)
        self._hparams_started = True
        self.flush()

    @property
    def hparams_open(self) -> bool:
        """Whether the run's HParams row waits for its outcome (:meth:`hparams_end`)."""
        return self._hparams_started and not self._hparams_ended

    @writes
    def hparams_end(self, outcome: str) -> None:
        """Close the run's HParams row with its outcome (once, at the end).

        Args:
            outcome: ``completed``, ``failed`` or ``interrupted``; its status in the
                tab is Success, Failure or Unknown (see :mod:`ami.metrics.hparams`).

        Raises:
            RuntimeError: No :meth:`hparams` before, or the outcome is written already.
            ValueError: An unknown outcome.
        """
        if not self._hparams_started:
            raise RuntimeError(
                f"{self.path}: hparams_end({outcome!r}) before hparams(): TensorBoard "
                "shows an outcome only for a run that wrote its hparams"
            )
        if self._hparams_ended:
            raise RuntimeError(
                f"{self.path}: the run's outcome is written already (TensorBoard "
                "keeps the first); hparams_end() is called once, at the end"
            )
        self._write_summary(session_end_summary(outcome), 0)
        self._hparams_ended = True
        self.flush()

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
