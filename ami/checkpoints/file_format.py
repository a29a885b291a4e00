"""The checkpoint file: a safetensors file whose metadata carries the rest of the state.

Why this layout: the tensors (almost all of a checkpoint's bytes) sit raw in the file,
so standard tools (``safetensors.torch.load_file``) can read them and nothing is ever
unpickled; the rest of the state (counters, settings, the nesting of dicts, lists and
tuples) travels as a JSON document in ``__metadata__["state"]``, tensors replaced by
references to their keys. A checksum over that document and every tensor byte turns a
damaged file into a clear error instead of a run that quietly goes NaN.

Layout (safetensors): 8 bytes little-endian header length N; N bytes of JSON header,
space-padded to a multiple of 8; the tensor bytes, contiguous, in the order of the
state document's references. ``__metadata__`` holds ``format`` ("ami-checkpoint"),
``version``, ``checksum`` (``sha256:<hex>``) and ``state``.

Why sha256: with the SHA extensions of current x86 and ARM CPUs it hashed about
2.1 GB/s here against blake2b's 1.4 GB/s (``benchmarks/checkpoint_io.py``; without
them blake2b would win: the checksum names its algorithm, so a later version may
switch). hashlib releases the GIL for both. The checksum covers the state document,
whose tensor references repeat each tensor's dtype and shape, so a damaged header
entry is caught by comparing it with the (checksummed) document.

Why incremental: the main thread writes a checkpoint a few MB per turn of its select
loop, between API requests, while the inference thread needs the GIL every few ms.
:class:`CheckpointWriter` writes with ``os.write`` on memoryviews of at most
``chunk_bytes`` and hashes the same chunks; both release the GIL for their duration, so
no call holds it for more than microseconds. The header goes in first with a
placeholder checksum and is rewritten once the last tensor byte is hashed: one pass.
"""

from __future__ import annotations

import errno
import hashlib
import json
import math
import os
import re
import stat
import struct
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from io import FileIO
from pathlib import Path
from typing import Any, NoReturn

import torch
from typing_extensions import override

FORMAT_NAME = "ami-checkpoint"
VERSION = 1
"""The version this code writes."""
READABLE_VERSIONS = frozenset({1})
"""The versions this code reads: bump on any change an older reader would misread."""
CHECKSUM_ALGORITHM = "sha256"
PARTIAL_SUFFIX = ".partial"
"""A file being written is ``<name>.partial`` until it is complete and renamed."""
MAX_HEADER_BYTES = 100 << 20
"""safetensors refuses larger headers; so do we (the state's non-tensor part is small)."""

_READ_CHUNK = 4 << 20
_DIGEST_HEX = hashlib.new(CHECKSUM_ALGORITHM).digest_size * 2
_PLACEHOLDER_CHECKSUM = f"{CHECKSUM_ALGORITHM}:{'0' * _DIGEST_HEX}"
# The header opens with these bytes (metadata first, format first): recognising them
# tells a truncated checkpoint from random bytes whose first 8 give a plausible length.
_OUR_PREFIX = b'{"__metadata__":{"format":"' + FORMAT_NAME.encode() + b'"'
_ZIP_MAGIC = b"PK\x03\x04"

_DTYPES: dict[torch.dtype, str] = {
    torch.float64: "F64",
    torch.float32: "F32",
    torch.float16: "F16",
    torch.bfloat16: "BF16",
    torch.int64: "I64",
    torch.int32: "I32",
    torch.int16: "I16",
    torch.int8: "I8",
    torch.uint64: "U64",
    torch.uint32: "U32",
    torch.uint16: "U16",
    torch.uint8: "U8",
    torch.bool: "BOOL",
    torch.float8_e4m3fn: "F8_E4M3",
    torch.float8_e5m2: "F8_E5M2",
    torch.complex64: "C64",
}
"""torch dtypes and their safetensors names (the names ``safetensors.torch`` uses)."""
_TORCH_DTYPES = {name: dtype for dtype, name in _DTYPES.items()}
_ACCEPTED = "dicts (str or int keys), lists, tuples, str, int, float, bool, None and CPU tensors"


class CheckpointError(Exception):
    """A checkpoint could not be written or read; the message names the file and why.

    Args:
        path: The checkpoint file.
        cause: What went wrong, e.g. ``"checksum mismatch: the file is corrupt"``.
        message: The full one-line message; by default ``"checkpoint <path>: <cause>"``.
    """

    def __init__(self, path: Path, cause: str, message: str | None = None) -> None:
        self.path = Path(path)
        self.cause = _one_line(cause)
        self.message = _one_line(message or f"checkpoint {path}: {cause}")
        super().__init__(self.message)

    @override
    def __reduce__(self) -> tuple[type[CheckpointError], tuple[Path, str, str]]:
        # Exceptions pickle their args; ours are (path, cause, message), not (message,).
        return (type(self), (self.path, self.cause, self.message))


@dataclass(frozen=True)
class TensorEntry:
    """One tensor of the file: its key, safetensors dtype, shape and byte range."""

    key: str
    dtype: str
    shape: tuple[int, ...]
    begin: int
    end: int


@dataclass(frozen=True, eq=False)
class Encoded:
    """A state laid out as a file, not yet written: what :class:`CheckpointWriter` writes.

    The buffers are views of the caller's tensors, not copies: the caller must leave
    those tensors unchanged until the writer finishes.
    """

    state_json: bytes
    entries: tuple[TensorEntry, ...]
    buffers: tuple[memoryview, ...]
    header_placeholder: bytes
    """The 8-byte length and header with a zero checksum; the real one has equal length."""

    @property
    def bytes_total(self) -> int:
        """The file's size."""
        data = self.entries[-1].end if self.entries else 0
        return len(self.header_placeholder) + data

    def header(self, checksum: str) -> bytes:
        """The 8-byte length and the header, with ``checksum`` in the metadata."""
        header = _header_bytes(self.state_json, self.entries, checksum)
        if len(header) != len(self.header_placeholder):
            raise AssertionError("a checksum changed the header's length")
        return header


@dataclass(frozen=True)
class Header:
    """What the header of a checkpoint file says, once checked against the file's size."""

    version: int
    checksum: str
    state_json: bytes
    entries: tuple[TensorEntry, ...]
    """In file order."""
    data_start: int
    size: int


# ---------------------------------------------------------------------------- encode


def encode(state: Mapping[str, Any]) -> Encoded:
    """Lay ``state`` out as a checkpoint file, without copying contiguous tensors.

    Dicts (keys ``str`` or ``int``; subclasses such as ``OrderedDict`` come back as
    plain dicts), lists, tuples, ``int``, ``float`` (nan and inf too), ``bool``,
    ``None``, ``str`` and CPU tensors of the dtypes in ``_DTYPES`` round-trip with their
    types. A non-contiguous tensor is made contiguous, which copies it (once, here).
    Tensors that share memory are stored once each.

    Raises:
        TypeError: A value (or dict key) of another type, named by its path in the
            state (``trainers.policy.foo: a set``); also a tensor not on the CPU, or
            sparse, or of a dtype safetensors cannot hold.
        ValueError: The non-tensor part of the state is larger than a header may be.
        RuntimeError: This machine is big-endian (the format is little-endian).
    """
    if sys.byteorder != "little":
        raise RuntimeError("checkpoints are little-endian; this machine is big-endian")
    if not isinstance(state, Mapping):
        raise TypeError(f"state: {_describe(state)}; a checkpoint's state is a mapping")
    encoder = _Encoder()
    document = encoder.value(state, ())
    state_json = json.dumps(document, separators=(",", ":"), allow_nan=False).encode("ascii")
    entries = tuple(encoder.entries)
    placeholder = _header_bytes(state_json, entries, _PLACEHOLDER_CHECKSUM)
    if len(placeholder) - 8 > MAX_HEADER_BYTES:
        raise ValueError(
            f"the state's non-tensor part is {len(placeholder) >> 20} MB as JSON, over the "
            f"{MAX_HEADER_BYTES >> 20} MB a header may hold; keep large arrays in tensors"
        )
    return Encoded(state_json, entries, tuple(encoder.buffers), placeholder)


class _Encoder:
    """Walks a state once, collecting tensors and building the state document."""

    def __init__(self) -> None:
        self.entries: list[TensorEntry] = []
        self.buffers: list[memoryview] = []
        self._keys: set[str] = {"__metadata__"}
        self._offset = 0
        self._open: set[int] = set()  # containers on the current path: a cycle check

    def value(self, value: Any, path: tuple[str, ...]) -> Any:
        kind = type(value)
        if value is None or kind in (bool, int, str):
            return value
        if kind is float:
            return value if math.isfinite(value) else {"float": repr(value)}
        if isinstance(value, torch.Tensor):
            return self._tensor(value, path)
        if isinstance(value, dict) or kind in (list, tuple):
            if id(value) in self._open:
                raise TypeError(f"{_dotted(path)}: a reference cycle; a checkpoint is a tree")
            self._open.add(id(value))
            try:
                if kind is list:
                    return [self.value(v, (*path, str(i))) for i, v in enumerate(value)]
                if kind is tuple:
                    return {"tuple": [self.value(v, (*path, str(i))) for i, v in enumerate(value)]}
                return self._dict(value, path)
            finally:
                self._open.discard(id(value))
        for plain in (bool, int, float, str, list, tuple):
            if isinstance(value, plain):  # numpy.float64, a namedtuple...: types would change
                raise TypeError(
                    f"{_dotted(path)}: {_describe(value)}, a subclass of {plain.__name__}; "
                    f"store a plain {plain.__name__}"
                )
        raise TypeError(f"{_dotted(path)}: {_describe(value)}; a checkpoint holds {_ACCEPTED}")

    def _dict(self, value: dict[Any, Any], path: tuple[str, ...]) -> Any:
        for key in value:
            if type(key) not in (str, int):
                raise TypeError(
                    f"{_dotted(path)}: a dict key {key!r} ({_describe(key)}); "
                    "checkpoint dict keys are str or int"
                )
        if all(type(key) is str for key in value):
            return {"dict": {k: self.value(v, (*path, k)) for k, v in value.items()}}
        return {"items": [[k, self.value(v, (*path, str(k)))] for k, v in value.items()]}

    def _tensor(self, tensor: torch.Tensor, path: tuple[str, ...]) -> dict[str, Any]:
        where = _dotted(path)
        if tensor.layout != torch.strided or tensor.is_quantized:
            raise TypeError(f"{where}: a {tensor.layout} tensor; checkpoints hold dense tensors")
        if tensor.device.type != "cpu":
            raise TypeError(f"{where}: a tensor on {tensor.device}; snapshot it to the CPU first")
        name = _DTYPES.get(tensor.dtype)
        if name is None:
            accepted = ", ".join(str(d).removeprefix("torch.") for d in _DTYPES)
            raise TypeError(f"{where}: a tensor of dtype {tensor.dtype}; accepted: {accepted}")
        data = tensor.detach().resolve_conj().resolve_neg()
        if not data.is_contiguous():
            data = data.contiguous()  # the one copy encode makes
        buffer = _bytes_of(data).numpy().data
        key = self._unique("/".join(path))
        shape = tuple(data.shape)
        entry = TensorEntry(key, name, shape, self._offset, self._offset + buffer.nbytes)
        self._offset = entry.end
        self.entries.append(entry)
        self.buffers.append(buffer)
        return {"tensor": key, "dtype": name, "shape": list(shape)}

    def _unique(self, key: str) -> str:
        # Lone surrogates cannot be UTF-8: serde_json (safetensors) would refuse the key.
        key = key.encode("utf-8", "backslashreplace").decode("utf-8")
        candidate, n = key, 1
        while candidate in self._keys:
            n += 1
            candidate = f"{key}#{n}"
        self._keys.add(candidate)
        return candidate


def _header_bytes(state_json: bytes, entries: tuple[TensorEntry, ...], checksum: str) -> bytes:
    header: dict[str, Any] = {
        "__metadata__": {
            "format": FORMAT_NAME,
            "version": str(VERSION),
            "checksum": checksum,
            "state": state_json.decode("ascii"),
        }
    }
    for e in entries:
        header[e.key] = {"dtype": e.dtype, "shape": list(e.shape), "data_offsets": [e.begin, e.end]}
    raw = json.dumps(header, separators=(",", ":"), allow_nan=False).encode("ascii")
    raw += b" " * (-len(raw) % 8)  # the tensor data starts 8-aligned, as safetensors pads
    return struct.pack("<Q", len(raw)) + raw


# ---------------------------------------------------------------------------- write


class CheckpointWriter:
    """Writes an :class:`Encoded` state to ``path``, a bounded number of bytes per call.

    The bytes go to ``<path>.partial``; only a complete, fsynced file is renamed onto
    ``path``, so a crash or a full disk leaves the previous ``path`` as it was. Use it
    from one thread. Dropping a writer without :meth:`abort` leaves the partial file
    (as a killed process would); ``CheckpointStore.remove_stale_partials`` clears it.

    Args:
        path: Where the finished file goes.
        encoded: What :func:`encode` made; its tensors must not change until done.
        chunk_bytes: The most one ``os.write`` (and one hash update) takes at a time.
    """

    def __init__(self, path: Path, encoded: Encoded, chunk_bytes: int = 4 << 20) -> None:
        if type(chunk_bytes) is not int or chunk_bytes < 1:
            raise ValueError(f"chunk_bytes={chunk_bytes!r}: must be an integer >= 1")
        self.path = Path(path)
        self.partial = self.path.with_name(self.path.name + PARTIAL_SUFFIX)
        self._encoded = encoded
        self._chunk = chunk_bytes
        self._segments = (memoryview(encoded.header_placeholder), *encoded.buffers)
        self._segment = 0
        self._offset = 0
        self._written = 0
        self._total = encoded.bytes_total
        self._hash = hashlib.new(CHECKSUM_ALGORITHM, encoded.state_json)
        self._fd: int | None = None
        self._state = "writing"  # then "done", "aborted" or "failed"

    @property
    def bytes_total(self) -> int:
        """The size of the finished file."""
        return self._total

    @property
    def bytes_written(self) -> int:
        """How many of its bytes are in the partial file so far."""
        return self._written

    def advance(self, max_bytes: int | None = None) -> bool:
        """Write at most ``max_bytes`` more (None: the rest); True once ``path`` is complete.

        The call that writes the last byte also rewrites the header with the checksum
        (the header's bytes again, beyond ``max_bytes``), fsyncs the file, renames it
        onto ``path`` and fsyncs the directory: only then is True returned, and that
        call lasts as long as the disk takes to flush the file (the GIL is released
        meanwhile). Later calls return True at once.

        Raises:
            CheckpointError: Writing failed (``no space left on device while saving
                <path>``); the partial file is removed, ``path`` is untouched.
            RuntimeError: The writer was aborted or has already failed.
            ValueError: ``max_bytes`` is not None or an integer >= 1.
        """
        if self._state == "done":
            return True
        if self._state != "writing":
            raise RuntimeError(f"the writer of {self.path} has {self._state}; start a new one")
        if max_bytes is not None and (type(max_bytes) is not int or max_bytes < 1):
            raise ValueError(f"max_bytes={max_bytes!r}: must be None (the rest) or an int >= 1")
        budget = self._total - self._written
        if max_bytes is not None:
            budget = min(budget, max_bytes)
        try:
            if self._fd is None:
                flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_BINARY", 0)
                self._fd = os.open(self.partial, flags, 0o666)
            self._write(self._fd, budget)
            if self._written == self._total:
                self._finish(self._fd)
        except OSError as exc:
            self._discard("failed")
            cause = os_error_cause(exc)
            raise CheckpointError(self.path, cause, f"{cause} while saving {self.path}") from exc
        return self._state == "done"

    def abort(self) -> None:
        """Stop writing and remove the partial file; ``path`` keeps what it had."""
        if self._state == "writing":
            self._discard("aborted")

    def _write(self, fd: int, budget: int) -> None:
        segments = self._segments
        while budget > 0:
            segment = segments[self._segment]
            if self._offset == segment.nbytes:
                self._segment += 1
                self._offset = 0
                continue
            size = min(self._chunk, budget, segment.nbytes - self._offset)
            piece = segment[self._offset : self._offset + size]
            written = os.write(fd, piece)
            if written <= 0:
                raise OSError(errno.EIO, "the file system accepted no bytes")
            if self._segment > 0:  # tensor bytes; the header is hashed via the state
                self._hash.update(piece[:written])
            self._offset += written
            self._written += written
            budget -= written

    def _finish(self, fd: int) -> None:
        header = memoryview(self._encoded.header(f"{CHECKSUM_ALGORITHM}:{self._hash.hexdigest()}"))
        os.lseek(fd, 0, os.SEEK_SET)
        while header.nbytes:
            written = os.write(fd, header)
            if written <= 0:
                raise OSError(errno.EIO, "the file system accepted no bytes")
            header = header[written:]
        fsync_file(fd)
        self._fd = None
        os.close(fd)
        os.replace(self.partial, self.path)
        self._state = "done"
        fsync_directory(self.path.parent)

    def _discard(self, state: str) -> None:
        self._state = state
        if self._fd is not None:
            fd, self._fd = self._fd, None
            with suppress(OSError):
                os.close(fd)
        with suppress(OSError):  # never created, or already renamed: nothing to clean
            os.unlink(self.partial)

    def __del__(self) -> None:
        # Close the descriptor, but keep the partial file: as a killed process would.
        fd = getattr(self, "_fd", None)
        if fd is not None:
            with suppress(OSError):
                os.close(fd)


def write_file(path: Path, state: Mapping[str, Any]) -> None:
    """Encode ``state`` and write it to ``path`` in one go (see :class:`CheckpointWriter`)."""
    CheckpointWriter(path, encode(state)).advance(None)


def fsync_file(fd: int) -> None:
    """Flush ``fd`` to the disk itself (macOS's fsync stops at the drive's cache)."""
    if sys.platform == "darwin":
        import fcntl

        fcntl.fcntl(fd, fcntl.F_FULLFSYNC)
    else:
        os.fsync(fd)


def fsync_directory(directory: Path) -> None:
    """Make a rename in ``directory`` durable; a no-op where directories cannot be fsynced.

    Windows cannot open a directory as a file; some file systems refuse to fsync one
    (EINVAL). Both mean the rename is as durable as that system makes it.
    """
    if os.name == "nt":
        return
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise
    finally:
        os.close(fd)


def os_error_cause(exc: OSError) -> str:
    """``OSError(ENOSPC)`` -> ``"no space left on device"``: the errno's words, lower case."""
    words = exc.strerror or (os.strerror(exc.errno) if exc.errno else str(exc))
    return words[:1].lower() + words[1:]


# ---------------------------------------------------------------------------- read


def read(path: Path) -> dict[str, Any]:
    """The state in the checkpoint at ``path``, verified against its checksum.

    Tensors come back as ordinary CPU tensors, read into fresh memory: the file is
    closed on return and may be deleted. Nothing is unpickled.

    Raises:
        CheckpointError: The file is missing or unreadable, not an ami checkpoint,
            written by an incompatible version, truncated or corrupt; the message
            names the file and which.
    """
    path = Path(path)
    with _open(path) as (file, size):
        header = _parse_header(path, file, size)
        tensors = {
            e.key: torch.empty(e.shape, dtype=_TORCH_DTYPES[e.dtype]) for e in header.entries
        }
        views = (_bytes_of(tensors[e.key]).numpy().data for e in header.entries)
        _check_data(path, file, header, views)
    for entry in header.entries:
        if entry.dtype == "BOOL" and bool(_bytes_of(tensors[entry.key]).gt(1).any()):
            _corrupt(path, f"bool tensor {entry.key!r} holds bytes other than 0 and 1")
    state = _decode_state(path, header, tensors)
    return state


def read_header_and_verify(path: Path) -> Header:
    """Check that ``path`` is a complete checkpoint this version reads: header and checksum.

    The full check: every byte is read and hashed (in a 4 MB buffer, no tensors are
    built), so a file that passes reads. It costs one read of the file.

    Raises:
        CheckpointError: As :func:`read`.
    """
    path = Path(path)
    with _open(path) as (file, size):
        header = _parse_header(path, file, size)
        scratch = memoryview(bytearray(_READ_CHUNK))
        _check_data(path, file, header, _scratch_views(header, scratch))
    _decode_state(path, header, None)
    return header


@contextmanager
def _open(path: Path) -> Iterator[tuple[FileIO, int]]:
    """The file, unbuffered (``readinto`` then releases the GIL per chunk), and its size."""
    try:
        info = os.stat(path)
        if not stat.S_ISREG(info.st_mode):
            raise CheckpointError(path, "cannot read it: not a regular file")
        file = open(path, "rb", buffering=0)  # noqa: SIM115 (closed by the with below)
    except OSError as exc:
        raise CheckpointError(path, f"cannot read it: {os_error_cause(exc)}") from exc
    with file:
        yield file, info.st_size


def _parse_header(path: Path, file: FileIO, size: int) -> Header:
    head = _read_some(path, file, min(size, 4096))
    if size == 0:
        _not_ours(path, "it is empty (0 bytes)")
    if head.startswith(_ZIP_MAGIC):
        if b"data.pkl" in head:
            raise CheckpointError(
                path, "an older ami checkpoint (torch.save format); this version cannot read it"
            )
        _not_ours(path, "it is a zip file")
    if size < 8:
        _not_ours(path, f"it has only {size} bytes")
    (length,) = struct.unpack("<Q", head[:8])
    # A header length whose low byte is 0x80 is common: only an implausible length
    # starting with the pickle opcode is a pickle file.
    if head[:1] == b"\x80" and not (2 <= length <= MAX_HEADER_BYTES and 8 + length <= size):
        _not_ours(path, "it is a pickle file (it is never unpickled)")
    if length < 2 or length > MAX_HEADER_BYTES or 8 + length > size:
        available = head[8 : 8 + len(_OUR_PREFIX)]
        if 8 + length > size and len(available) > 0 and _OUR_PREFIX.startswith(available):
            _truncated(path, size, 8 + length)
        _not_ours(
            path,
            f"no safetensors header (its first 8 bytes give a header length of {length} "
            f"bytes; the file has {size})",
        )
    raw = head[8 : 8 + length]
    if len(raw) < length:
        raw += _read_some(path, file, length - len(raw))
    try:
        header = json.loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicates)
    except (UnicodeDecodeError, ValueError) as exc:
        if raw.startswith(_OUR_PREFIX):
            _corrupt(path, f"its header is not valid JSON ({exc})")
        _not_ours(path, f"its header is not valid JSON ({exc})")
    if not isinstance(header, dict):
        _not_ours(path, "its header is not a JSON object")
    metadata = header.get("__metadata__")
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT_NAME:
        tensors = [v for k, v in header.items() if k != "__metadata__"]
        if tensors and all(isinstance(v, dict) and "data_offsets" in v for v in tensors):
            _not_ours(path, f'a safetensors file without "format": "{FORMAT_NAME}" in its metadata')
        _not_ours(path, f'its header has no "__metadata__" with "format": "{FORMAT_NAME}"')
    version_text = metadata.get("version")
    if not isinstance(version_text, str) or not re.fullmatch(r"[0-9]{1,9}", version_text):
        _corrupt(path, f"its version {version_text!r} is not a number")
    version = int(version_text)
    if version not in READABLE_VERSIONS:
        age = "a newer" if version > max(READABLE_VERSIONS) else "an older"
        readable = ", ".join(str(v) for v in sorted(READABLE_VERSIONS))
        raise CheckpointError(
            path,
            f"incompatible version: written by {age} ami (checkpoint version {version}); "
            f"this version reads version {readable}",
        )
    checksum, state = metadata.get("checksum"), metadata.get("state")
    if not isinstance(checksum, str) or not checksum.startswith(f"{CHECKSUM_ALGORITHM}:"):
        _corrupt(path, f"its checksum {checksum!r} is not {CHECKSUM_ALGORITHM}:<hex>")
    if not isinstance(state, str):
        _corrupt(path, "its metadata has no state document")
    entries = _entries(path, {k: v for k, v in header.items() if k != "__metadata__"})
    data_start = 8 + length
    expected = data_start + (entries[-1].end if entries else 0)
    if size < expected:
        _truncated(path, size, expected)
    if size > expected:
        _corrupt(path, f"it has {size - expected} bytes after the end its header gives")
    return Header(version, checksum, state.encode("utf-8"), entries, data_start, size)


def _entries(path: Path, raw: dict[str, Any]) -> tuple[TensorEntry, ...]:
    entries = []
    for key, value in raw.items():
        if not isinstance(value, dict) or set(value) != {"dtype", "shape", "data_offsets"}:
            _corrupt(path, f"header entry {key!r} is not a tensor's dtype, shape and offsets")
        dtype, shape, offsets = value["dtype"], value["shape"], value["data_offsets"]
        if dtype not in _TORCH_DTYPES:
            _corrupt(path, f"tensor {key!r} has dtype {dtype!r}, not one this version reads")
        if not _ints(shape) or not _ints(offsets) or len(offsets) != 2:
            _corrupt(path, f"tensor {key!r} has a malformed shape or offsets")
        itemsize = _TORCH_DTYPES[dtype].itemsize
        if offsets[1] - offsets[0] != math.prod(shape) * itemsize:
            _corrupt(path, f"tensor {key!r}: its offsets do not fit its shape {shape} and dtype")
        entries.append(TensorEntry(key, dtype, tuple(shape), offsets[0], offsets[1]))
    entries.sort(key=lambda e: (e.begin, e.end))
    position = 0
    for entry in entries:
        if entry.begin != position:
            _corrupt(path, f"tensor {entry.key!r} starts at {entry.begin}, expected {position}")
        position = entry.end
    return tuple(entries)


def _check_data(path: Path, file: FileIO, header: Header, views: Iterator[memoryview]) -> None:
    """Read the tensor bytes into ``views`` (one per entry, in order), checking the hash."""
    digest = hashlib.new(CHECKSUM_ALGORITHM, header.state_json)
    file.seek(header.data_start)
    for view in views:
        for start in range(0, view.nbytes, _READ_CHUNK):
            piece = view[start : start + _READ_CHUNK]
            _read_into(path, file, piece)
            digest.update(piece)
    if f"{CHECKSUM_ALGORITHM}:{digest.hexdigest()}" != header.checksum:
        raise CheckpointError(path, "checksum mismatch: the file is corrupt")


def _scratch_views(header: Header, scratch: memoryview) -> Iterator[memoryview]:
    # One view per entry's bytes would be as large as the tensor: reuse one buffer.
    for entry in header.entries:
        remaining = entry.end - entry.begin
        while remaining:
            size = min(remaining, scratch.nbytes)
            yield scratch[:size]
            remaining -= size


def _decode_state(
    path: Path, header: Header, tensors: Mapping[str, torch.Tensor] | None
) -> dict[str, Any]:
    entries = {e.key: e for e in header.entries}
    used: set[str] = set()

    def restore(node: Any, where: str) -> Any:
        if node is None or type(node) in (bool, int, float, str):
            return node
        if type(node) is list:
            return [restore(v, f"{where}.{i}") for i, v in enumerate(node)]
        if type(node) is dict and "tensor" in node:
            return tensor(node, where)
        if type(node) is not dict or len(node) != 1:
            raise ValueError(f"{where}: {_describe(node)} where one tagged value belongs")
        ((tag, value),) = node.items()
        if tag == "dict" and type(value) is dict:
            return {k: restore(v, f"{where}.{k}") for k, v in value.items()}
        if tag == "items" and type(value) is list:
            return dict(item(pair, where) for pair in value)
        if tag == "tuple" and type(value) is list:
            return tuple(restore(v, f"{where}.{i}") for i, v in enumerate(value))
        if tag == "float" and value in ("nan", "inf", "-inf"):
            return float(value)
        raise ValueError(f"{where}: unknown tag {tag!r}")

    def item(pair: Any, where: str) -> tuple[Any, Any]:
        if type(pair) is not list or len(pair) != 2 or type(pair[0]) not in (str, int):
            raise ValueError(f"{where}: a dict item that is not [str or int key, value]")
        return pair[0], restore(pair[1], f"{where}.{pair[0]}")

    def tensor(node: dict[str, Any], where: str) -> Any:
        key = node["tensor"]
        entry = entries.get(key) if type(key) is str else None
        if entry is None or key in used:
            raise ValueError(f"{where}: refers to tensor {key!r}, absent or referred to twice")
        if node.get("dtype") != entry.dtype or node.get("shape") != list(entry.shape):
            raise ValueError(f"{where}: the header's dtype or shape for tensor {key!r} differs")
        used.add(key)
        return None if tensors is None else tensors[key]

    try:
        document = json.loads(header.state_json, object_pairs_hook=_no_duplicates)
        state = restore(document, "state")
    except (ValueError, RecursionError) as exc:
        _corrupt(path, f"its state document is damaged ({exc})")
    if type(state) is not dict:
        _corrupt(path, "its state document is not a mapping")
    if used != set(entries):
        _corrupt(path, f"tensors {sorted(set(entries) - used)} are in no part of the state")
    return state


# ---------------------------------------------------------------------------- helpers


def _bytes_of(tensor: torch.Tensor) -> torch.Tensor:
    """A contiguous tensor's memory as a flat uint8 tensor (a view, not a copy)."""
    return tensor.reshape(-1).view(torch.uint8)


def _read_some(path: Path, file: FileIO, size: int) -> bytes:
    try:
        return file.read(size) or b""
    except OSError as exc:
        raise CheckpointError(path, f"cannot read it: {os_error_cause(exc)}") from exc


def _read_into(path: Path, file: FileIO, view: memoryview) -> None:
    while view.nbytes:
        try:
            got = file.readinto(view)
        except OSError as exc:
            raise CheckpointError(path, f"cannot read it: {os_error_cause(exc)}") from exc
        if not got:
            _corrupt(path, "it got shorter while being read")
        view = view[got:]


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise ValueError("duplicate keys")
    return result


def _ints(value: Any) -> bool:
    return type(value) is list and all(type(v) is int and v >= 0 for v in value)


def _dotted(path: tuple[str, ...]) -> str:
    return ".".join(path) if path else "state"


def _describe(value: Any) -> str:
    kind = type(value)
    name = (
        kind.__qualname__
        if kind.__module__ == "builtins"
        else f"{kind.__module__}.{kind.__qualname__}"
    )
    article = "an" if name[:1].lower() in "aeiou" else "a"
    return f"{article} {name}"


def _one_line(text: str) -> str:
    return text.replace("\r", " ").replace("\n", " ")


def _not_ours(path: Path, why: str) -> NoReturn:
    raise CheckpointError(path, f"not an ami checkpoint: {why}")


def _corrupt(path: Path, why: str) -> NoReturn:
    raise CheckpointError(path, f"corrupt: {why}")


def _truncated(path: Path, size: int, expected: int) -> NoReturn:
    raise CheckpointError(path, f"truncated: the file has {size} bytes, its header says {expected}")
