"""Every scalar and the hparams of one run, read from its TensorBoard event files.

TensorBoard's own loaders stop without a word at a damaged record (they treat it like
the unfinished tail of a file still being written), and its ``EventAccumulator`` keeps a
random sample of each chart by default. A summary that compares runs needs every point
and must say when a file is damaged, so the records are read here: the TFRecord framing
(length, masked CRC32C of the length, data, masked CRC32C of the data) is checked record
by record with TensorBoard's own CRC, and the events are TensorBoard's protos.

An incomplete record at the very end of a file is not damage: it is what a killed run
leaves behind, and the records before it are kept.

Both layouts of a run's ``tensorboard/`` folder are read: one folder holding one event
file per thread, and the older ``tensorboard/{main,inference,training}/`` subfolders.
Tags carry their thread's prefix in both, so the files merge into one set of charts.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np
import numpy.typing as npt
from google.protobuf.message import DecodeError  # type: ignore[import-untyped]
from tensorboard.compat.proto.event_pb2 import Event
from tensorboard.compat.proto.summary_pb2 import Summary
from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import masked_crc32c
from tensorboard.plugins.hparams import plugin_data_pb2
from tensorboard.util import tensor_util

HParamValue = float | str | bool


class DamagedEventFile(ValueError):
    """An event file whose records fail their checksums or do not parse."""


@dataclass(frozen=True)
class Series:
    """One chart: its points in step order (equal steps keep the order they were written)."""

    steps: npt.NDArray[np.int64]
    values: npt.NDArray[np.float64]
    wall_times: npt.NDArray[np.float64]

    def __len__(self) -> int:
        return len(self.steps)

    @property
    def last(self) -> float:
        """The value written last (the end-of-run scalars are written once)."""
        return float(self.values[-1])


@dataclass
class EventData:
    """What a run's event files hold that a summary uses."""

    scalars: dict[str, Series] = field(default_factory=dict)
    hparams: dict[str, HParamValue] = field(default_factory=dict)
    first_wall_time: float | None = None
    last_wall_time: float | None = None
    files: int = 0
    truncated: list[str] = field(default_factory=list)
    """Files that end in an incomplete record (a killed run): read up to it."""


def event_files(tensorboard_dir: Path) -> list[Path]:
    """The event files of a run, in both layouts (one folder, or one per thread)."""
    found = [
        Path(root) / name
        for root, _, names in os.walk(tensorboard_dir)
        for name in names
        if "tfevents" in name
    ]
    return sorted(found)


def read_events(tensorboard_dir: Path) -> EventData:
    """Every scalar and the hparams in the event files under ``tensorboard_dir``.

    Raises:
        DamagedEventFile: Naming the file, the record's offset and what is wrong.
        OSError: A file could not be read.
    """
    points: dict[str, list[tuple[int, float, float]]] = {}
    data = EventData()
    for path in event_files(tensorboard_dir):
        data.files += 1
        for event in _events(path, data):
            wall = float(event.wall_time)
            if wall > 0:
                data.first_wall_time = min(wall, data.first_wall_time or wall)
                data.last_wall_time = max(wall, data.last_wall_time or wall)
            if not event.HasField("summary"):
                continue
            for value in event.summary.value:
                if value.metadata.plugin_data.plugin_name == "hparams":
                    found = _hparams(value, path)
                    if found and not data.hparams:  # TensorBoard keeps the first, as here
                        data.hparams = found
                    continue
                number = _scalar(value)
                if number is not None:
                    points.setdefault(value.tag, []).append((int(event.step), number, wall))
    for tag, rows in points.items():
        rows.sort(key=lambda row: row[0])  # stable: equal steps keep their file order
        steps, values, walls = zip(*rows, strict=True)
        data.scalars[tag] = Series(
            np.asarray(steps, dtype=np.int64),
            np.asarray(values, dtype=np.float64),
            np.asarray(walls, dtype=np.float64),
        )
    return data


def _events(path: Path, data: EventData) -> Iterator[Event]:
    with path.open("rb") as file:
        for offset, record in _records(file, path, data):
            try:
                yield Event.FromString(record)
            except DecodeError as error:
                raise DamagedEventFile(
                    f"{path.name}: the record at byte {offset} is not an event ({error})"
                ) from error


def _records(file: BinaryIO, path: Path, data: EventData) -> Iterator[tuple[int, bytes]]:
    size = os.fstat(file.fileno()).st_size
    offset = 0
    while True:
        header = file.read(12)
        if not header:
            return
        if len(header) < 12:
            data.truncated.append(path.name)
            return
        (length,) = struct.unpack("<Q", header[:8])
        (length_crc,) = struct.unpack("<I", header[8:])
        if masked_crc32c(header[:8]) != length_crc:
            raise DamagedEventFile(
                f"{path.name}: the record at byte {offset} fails its length checksum"
            )
        if offset + 12 + length + 4 > size:
            data.truncated.append(path.name)  # the checksummed length runs past the end
            return
        record = file.read(length)
        (record_crc,) = struct.unpack("<I", file.read(4))
        if masked_crc32c(record) != record_crc:
            raise DamagedEventFile(
                f"{path.name}: the record at byte {offset} fails its data checksum"
            )
        yield offset, record
        offset += 12 + length + 4


def _scalar(value: Summary.Value) -> float | None:
    """The number of a scalar summary, written either way (simple_value or a 0-d tensor)."""
    if value.HasField("simple_value"):
        return float(value.simple_value)
    if not value.HasField("tensor") or value.tensor.tensor_shape.dim:
        return None
    plugin = value.metadata.plugin_data.plugin_name
    if plugin not in ("", "scalars"):
        return None
    array = tensor_util.make_ndarray(value.tensor)
    if array.dtype.kind not in "fiub":
        return None  # a 0-d string tensor: text, not a number
    return float(array.item())


def _hparams(value: Summary.Value, path: Path) -> dict[str, HParamValue]:
    try:
        content = plugin_data_pb2.HParamsPluginData.FromString(value.metadata.plugin_data.content)
    except DecodeError as error:
        raise DamagedEventFile(f"{path.name}: its hparams summary does not parse") from error
    if content.WhichOneof("data") != "session_start_info":
        return {}  # the experiment's declaration or the session's end: no values
    found: dict[str, HParamValue] = {}
    for name, hparam in content.session_start_info.hparams.items():
        kind = hparam.WhichOneof("kind")
        if kind == "number_value":
            found[name] = float(hparam.number_value)
        elif kind == "string_value":
            found[name] = str(hparam.string_value)
        elif kind == "bool_value":
            found[name] = bool(hparam.bool_value)
    return found
