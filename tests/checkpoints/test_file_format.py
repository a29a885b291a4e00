"""The checkpoint file: round trips, safetensors compatibility, and every way it can fail."""

from __future__ import annotations

import errno
import json
import math
import os
import pickle
import random
import struct
from collections import OrderedDict
from pathlib import Path
from typing import Any

import pytest
import torch

from ami.checkpoints import file_format
from ami.checkpoints.file_format import (
    CheckpointError,
    CheckpointWriter,
    encode,
    read,
    read_header_and_verify,
    write_file,
)

DTYPES = [
    torch.float32,
    torch.float16,
    torch.float64,
    torch.bfloat16,
    torch.uint8,
    torch.int8,
    torch.int16,
    torch.int32,
    torch.int64,
    torch.bool,
    torch.uint16,
    torch.uint32,
    torch.uint64,
    torch.float8_e4m3fn,
    torch.float8_e5m2,
    torch.complex64,
]


def random_tensor(dtype: torch.dtype, shape: tuple[int, ...], seed: int) -> torch.Tensor:
    """Random bytes reinterpreted as ``dtype``: every bit pattern, nan and inf included."""
    generator = torch.Generator().manual_seed(seed)
    itemsize = torch.empty((), dtype=dtype).element_size()
    count = math.prod(shape) * itemsize
    raw = torch.randint(0, 256, (count,), dtype=torch.uint8, generator=generator)
    if dtype == torch.bool:
        raw = raw % 2
    return raw.view(dtype).reshape(shape)


def rich_state() -> dict[str, Any]:
    tensors = {
        str(dtype).removeprefix("torch."): random_tensor(dtype, (3, 5), i)
        for i, dtype in enumerate(DTYPES)
    }
    optimizer_like = {
        "state": {0: {"step": torch.tensor(7.0), "exp_avg": torch.randn(4, 3)}, 1: {}},
        "param_groups": [{"lr": 1e-3, "betas": (0.9, 0.999), "params": [0, 1], "foreach": None}],
    }
    return {
        "models": {"encoder": OrderedDict(weight=torch.randn(4, 3), bias=torch.zeros(4))},
        "dtypes": tensors,
        "zero_d": torch.tensor(3.5, dtype=torch.float64),
        "zero_d_bool": torch.tensor(True),
        "empty": torch.empty(0, 7, dtype=torch.int16),
        "empty_1d": torch.empty(0),
        "non_contiguous": torch.arange(24, dtype=torch.float32).reshape(4, 6).t()[1:, ::2],
        "optimizer": optimizer_like,
        "mixed_keys": {1: "one", "1": "string one", -5: [1, 2], "z": None},
        "tuples": (1, (2.0, "three"), (), ([None],)),
        "floats": [
            float("nan"),
            float("inf"),
            float("-inf"),
            -0.0,
            5e-324,
            1.7976931348623157e308,
            0.1,
        ],
        "ints": [0, -1, 2**70, -(2**63)],
        "bools": [True, False],
        "none": None,
        "text": ["", "naïve ☃", 'quote " backslash \\ newline \n', "\udc80 lone surrogate"],
        "nested": [[[1], [2, [3, [4.5]]]], [{"deep": [torch.ones(2, dtype=torch.int8)]}]],
        "same_path_twice": {"a/b": torch.ones(1), "a": {"b": torch.zeros(1)}},
        "__metadata__": torch.full((2,), 9.0),
    }


def raw_bytes(tensor: torch.Tensor) -> bytes:
    return bytes(tensor.contiguous().reshape(-1).view(torch.uint8).numpy())


def assert_same(expected: Any, actual: Any, where: str = "state") -> None:
    """Same types (OrderedDict comes back a dict), same values, tensors bit for bit."""
    if isinstance(expected, torch.Tensor):
        assert type(actual) is torch.Tensor, where
        assert actual.dtype == expected.dtype, where
        assert actual.shape == expected.shape, where
        assert actual.device.type == "cpu", where
        assert raw_bytes(actual) == raw_bytes(expected), where
        if not expected.is_floating_point() and not expected.is_complex():
            assert torch.equal(actual, expected), where
        return
    if isinstance(expected, dict):
        assert type(actual) is dict, where
        assert list(actual) == list(expected), where
        for key in expected:
            assert type(next(k for k in actual if k == key)) is type(key), where
            assert_same(expected[key], actual[key], f"{where}.{key}")
        return
    assert type(actual) is type(expected), where
    if isinstance(expected, (list, tuple)):
        assert len(actual) == len(expected), where
        for i, (e, a) in enumerate(zip(expected, actual)):
            assert_same(e, a, f"{where}.{i}")
    elif isinstance(expected, float) and math.isnan(expected):
        assert math.isnan(actual), where
    elif isinstance(expected, float):
        assert struct.pack("<d", actual) == struct.pack("<d", expected), where  # -0.0 too
    else:
        assert actual == expected, where


def test_a_rich_nested_state_round_trips_bit_for_bit(tmp_path: Path) -> None:
    state = rich_state()
    path = tmp_path / "rich.ckpt"
    write_file(path, state)
    restored = read(path)
    assert_same(state, restored)


def test_a_real_optimizer_and_model_resume_from_the_file(tmp_path: Path) -> None:
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    model(torch.randn(5, 3)).sum().backward()
    optimizer.step()
    path = tmp_path / "train.ckpt"
    write_file(path, {"model": model.state_dict(), "optimizer": optimizer.state_dict()})
    state = read(path)
    fresh_model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    fresh_optimizer = torch.optim.Adam(fresh_model.parameters(), lr=0.5)
    fresh_model.load_state_dict(state["model"])
    fresh_optimizer.load_state_dict(state["optimizer"])
    for name, value in model.state_dict().items():
        assert torch.equal(fresh_model.state_dict()[name], value), name
    assert_same(optimizer.state_dict(), fresh_optimizer.state_dict())


def test_standard_safetensors_tools_read_the_tensors(tmp_path: Path) -> None:
    safetensors_torch = pytest.importorskip("safetensors.torch")
    safe_open = pytest.importorskip("safetensors").safe_open
    state = rich_state()
    known = getattr(safetensors_torch, "_TYPES", None)  # older releases lack uint16 and more
    if known is not None:
        state["dtypes"] = {k: v for k, v in state["dtypes"].items() if v.dtype in known.values()}
    path = tmp_path / "compatible.ckpt"
    write_file(path, state)
    loaded = safetensors_torch.load_file(str(path))
    encoded = encode(state)
    assert sorted(loaded) == sorted(entry.key for entry in encoded.entries)
    assert torch.equal(loaded["models/encoder/weight"], state["models"]["encoder"]["weight"])
    assert raw_bytes(loaded["dtypes/bfloat16"]) == raw_bytes(state["dtypes"]["bfloat16"])
    assert loaded["zero_d"].shape == () and loaded["empty"].shape == (0, 7)
    assert {"a/b", "a/b#2"} <= {k.removeprefix("same_path_twice/") for k in loaded}
    ours = read(path)
    for key, tensor in loaded.items():
        entry = next(e for e in encoded.entries if e.key == key)
        assert tensor.dtype == file_format._TORCH_DTYPES[entry.dtype], key
        assert tuple(tensor.shape) == entry.shape, key
    assert raw_bytes(loaded["non_contiguous"]) == raw_bytes(ours["non_contiguous"])
    with safe_open(str(path), framework="pt") as file:
        metadata = file.metadata()
    assert metadata["format"] == "ami-checkpoint" and metadata["version"] == "1"
    assert metadata["checksum"].startswith("sha256:")
    with path.open("rb") as file:
        (length,) = struct.unpack("<Q", file.read(8))
    assert length % 8 == 0, "the tensor data starts 8-aligned"


def test_writing_in_small_steps_gives_the_same_file_as_writing_at_once(tmp_path: Path) -> None:
    state = rich_state()
    at_once, in_steps = tmp_path / "once.ckpt", tmp_path / "steps.ckpt"
    write_file(at_once, state)
    writer = CheckpointWriter(in_steps, encode(state), chunk_bytes=5)
    progress = []
    while not writer.advance(7):
        progress.append(writer.bytes_written)
        assert not in_steps.exists(), "the file appears only when complete"
        assert writer.partial.exists()
    assert progress == list(range(7, writer.bytes_total, 7))
    assert writer.bytes_written == writer.bytes_total == in_steps.stat().st_size
    assert not writer.partial.exists()
    assert in_steps.read_bytes() == at_once.read_bytes()
    assert writer.advance(7), "a finished writer stays finished"


def test_encode_writes_contiguous_tensors_from_their_memory_and_copies_the_others(
    tmp_path: Path,
) -> None:
    contiguous = torch.zeros(4)
    strided = torch.zeros(4, 4).t()
    encoded = encode({"contiguous": contiguous, "strided": strided})
    contiguous.fill_(1.0)  # after encode: the file shows it only if encode did not copy
    strided.fill_(1.0)
    path = tmp_path / "views.ckpt"
    CheckpointWriter(path, encoded).advance()
    state = read(path)
    assert torch.equal(state["contiguous"], torch.ones(4))
    assert torch.equal(state["strided"], torch.zeros(4, 4)), "a non-contiguous one was copied"


@pytest.mark.parametrize(
    ("state", "message"),
    [
        (
            {"trainers": {"policy": {"foo": {1, 2}}}},
            "trainers.policy.foo: a set; a checkpoint holds dicts (str or int keys), lists, "
            "tuples, str, int, float, bool, None and CPU tensors",
        ),
        ({"trainers": [1, {"x": object()}]}, "trainers.1.x: an object; a checkpoint holds"),
        ({"a": b"bytes"}, "a: a bytes; a checkpoint holds"),
        ({"a": {1.5: 2}}, "a: a dict key 1.5 (a float); checkpoint dict keys are str or int"),
        ({"a": {True: 2}}, "a: a dict key True (a bool); checkpoint dict keys are str or int"),
        ({"a": torch.Size([1, 2])}, "a: a torch.Size, a subclass of tuple; store a plain tuple"),
        (
            {"a": torch.zeros(2, dtype=torch.complex128)},
            "a: a tensor of dtype torch.complex128; accepted: float64, float32",
        ),
        ({"a": torch.zeros(2).to_sparse()}, "a: a torch.sparse_coo tensor; checkpoints hold dense"),
        ({"a": torch.zeros(2, device="meta")}, "a: a tensor on meta; snapshot it to the CPU first"),
    ],
)
def test_a_value_of_another_type_is_refused_naming_its_path(
    state: dict[str, Any], message: str
) -> None:
    with pytest.raises(TypeError) as error:
        encode(state)
    assert str(error.value).startswith(message), str(error.value)


def test_a_reference_cycle_is_refused_naming_its_path() -> None:
    loop: list[Any] = [1]
    loop.append(loop)
    with pytest.raises(TypeError, match=r"^a\.loop\.1: a reference cycle"):
        encode({"a": {"loop": loop}})
    shared = [1, 2]
    encode({"a": shared, "b": shared})  # shared but not a cycle: fine


def test_a_state_that_is_not_a_mapping_is_refused() -> None:
    with pytest.raises(TypeError, match=r"^state: a list"):
        encode([1, 2])  # type: ignore[arg-type]


def write_sample(path: Path) -> dict[str, Any]:
    state = {
        "weights": torch.randn(64, 32, generator=torch.Generator().manual_seed(0)),
        "counts": torch.arange(100, dtype=torch.int16),
        "step": 12,
        "name": "sample",
    }
    write_file(path, state)
    return state


def flip(path: Path, positions: list[int], mask: int = 0xFF) -> None:
    data = bytearray(path.read_bytes())
    for position in positions:
        data[position] ^= mask
    path.write_bytes(bytes(data))


def header_length(path: Path) -> int:
    with path.open("rb") as file:
        (length,) = struct.unpack("<Q", file.read(8))
    return int(length)


def assert_names_file(error: CheckpointError, path: Path) -> None:
    assert error.path == path
    assert str(path) in str(error)
    assert "\n" not in str(error)


@pytest.mark.parametrize("seed", range(5))
def test_64_flipped_bytes_in_the_tensor_data_are_a_checksum_mismatch(
    tmp_path: Path, seed: int
) -> None:
    path = tmp_path / "flipped.ckpt"
    write_sample(path)
    start = 8 + header_length(path)
    flip(path, random.Random(seed).sample(range(start, path.stat().st_size), 64))
    with pytest.raises(CheckpointError) as error:
        read(path)
    assert error.value.cause == "checksum mismatch: the file is corrupt"
    assert_names_file(error.value, path)
    with pytest.raises(CheckpointError, match="checksum mismatch"):
        read_header_and_verify(path)


@pytest.mark.parametrize("seed", range(20))
def test_64_flipped_bytes_in_the_header_never_load(tmp_path: Path, seed: int) -> None:
    path = tmp_path / "flipped.ckpt"
    write_sample(path)
    flip(path, random.Random(seed).sample(range(8, 8 + header_length(path)), 64))
    with pytest.raises(CheckpointError) as error:
        read(path)
    assert "corrupt" in error.value.cause or "not an ami checkpoint" in error.value.cause
    assert_names_file(error.value, path)


@pytest.mark.parametrize("mask", [0x01, 0x20, 0x80])
def test_any_one_flipped_bit_in_the_header_fails_or_changes_nothing(
    tmp_path: Path, mask: int
) -> None:
    original = tmp_path / "original.ckpt"
    state = write_sample(original)
    length = header_length(original)
    path = tmp_path / "flipped.ckpt"
    failures = 0
    for position in range(8 + length):
        path.write_bytes(original.read_bytes())
        flip(path, [position], mask)
        try:
            restored = read(path)
        except CheckpointError as error:
            assert_names_file(error, path)
            failures += 1
            continue
        assert_same(state, restored, f"byte {position}")  # e.g. a space of the padding
    assert failures >= length - 8


def rewrite_header(path: Path, old: bytes, new: bytes) -> None:
    """Replace ``old`` with ``new`` (same length) in the header: a forged but valid file."""
    assert len(old) == len(new)
    data = path.read_bytes()
    head = 8 + header_length(path)
    assert old in data[:head]
    path.write_bytes(data[:head].replace(old, new, 1) + data[head:])


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (b'"dtype":"I16","shape":[100]', b'"dtype":"U16","shape":[100]'),
        (b'"shape":[64,32]', b'"shape":[32,64]'),
        (b'"weights":{"dtype"', b'"weightz":{"dtype"'),
    ],
)
def test_a_header_entry_that_disagrees_with_the_checksummed_state_is_corrupt(
    tmp_path: Path, old: bytes, new: bytes
) -> None:
    path = tmp_path / "forged.ckpt"
    write_sample(path)
    rewrite_header(path, old, new)
    with pytest.raises(CheckpointError, match="corrupt") as error:
        read(path)
    assert_names_file(error.value, path)


def test_a_bool_tensor_holding_other_bytes_than_0_and_1_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "bools.ckpt"
    write_file(path, {"flags": torch.tensor([0, 2], dtype=torch.uint8).view(torch.bool)})
    with pytest.raises(CheckpointError, match="bool tensor 'flags' holds bytes other than 0"):
        read(path)


def make_random(path: Path) -> None:
    path.write_bytes(random.Random(1).randbytes(10_000))


def make_empty(path: Path) -> None:
    path.write_bytes(b"")


def make_torch_save(path: Path) -> None:
    torch.save({"format": 1, "models": {"m": {"w": torch.ones(2)}}}, path)


def make_legacy_pickle(path: Path) -> None:
    path.write_bytes(pickle.dumps({"a": 1}, protocol=2))


def make_truncated_data(path: Path) -> None:
    write_sample(path)
    path.write_bytes(path.read_bytes()[:-100])


def make_truncated_header(path: Path) -> None:
    write_sample(path)
    path.write_bytes(path.read_bytes()[:50])


def make_future(path: Path) -> None:
    write_sample(path)
    rewrite_header(path, b'"version":"1"', b'"version":"9"')


def make_past(path: Path) -> None:
    write_sample(path)
    rewrite_header(path, b'"version":"1"', b'"version":"0"')


def make_trailing(path: Path) -> None:
    write_sample(path)
    path.write_bytes(path.read_bytes() + b"extra")


def make_other_safetensors(path: Path) -> None:
    raw = json.dumps(
        {
            "__metadata__": {"format": "pt"},
            "w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
        }
    ).encode()
    raw += b" " * (-len(raw) % 8)
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + bytes(8))


def make_bad_json(path: Path) -> None:
    raw = b'{"__metadata__": oops}  '
    path.write_bytes(struct.pack("<Q", len(raw)) + raw)


def make_short(path: Path) -> None:
    path.write_bytes(b"\x01\x02\x03")


@pytest.mark.parametrize(
    ("make", "cause"),
    [
        (
            make_random,
            "not an ami checkpoint: no safetensors header (its first 8 bytes give a header length",
        ),
        (make_empty, "not an ami checkpoint: it is empty (0 bytes)"),
        (make_short, "not an ami checkpoint: it has only 3 bytes"),
        (
            make_torch_save,
            "an older ami checkpoint (torch.save format); this version cannot read it",
        ),
        (make_legacy_pickle, "not an ami checkpoint: it is a pickle file"),
        (make_truncated_data, "truncated: the file has"),
        (make_truncated_header, "truncated: the file has 50 bytes"),
        (
            make_future,
            "incompatible version: written by a newer ami (checkpoint version 9); "
            "this version reads version 1",
        ),
        (make_past, "incompatible version: written by an older ami (checkpoint version 0)"),
        (make_trailing, "corrupt: it has 5 bytes after the end its header gives"),
        (make_other_safetensors, "not an ami checkpoint: a safetensors file without"),
        (make_bad_json, "not an ami checkpoint: its header is not valid JSON"),
    ],
)
def test_a_file_that_is_not_a_readable_checkpoint_says_why_naming_it(
    tmp_path: Path, make: Any, cause: str
) -> None:
    path = tmp_path / "bad.ckpt"
    make(path)
    for check in (read, read_header_and_verify):
        with pytest.raises(CheckpointError) as error:
            check(path)
        assert error.value.cause.startswith(cause), error.value.cause
        assert str(error.value) == f"checkpoint {path}: {error.value.cause}"
        assert_names_file(error.value, path)


def test_reading_never_unpickles(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("torch.load or pickle was called")

    monkeypatch.setattr(torch, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    path = tmp_path / "old.pt"
    torch.save({"a": torch.ones(1)}, path)
    with pytest.raises(CheckpointError, match="older ami checkpoint"):
        read(path)
    write_sample(tmp_path / "new.ckpt")
    read(tmp_path / "new.ckpt")


def test_a_missing_file_or_a_folder_is_named_with_the_cause(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError) as error:
        read(tmp_path / "absent.ckpt")
    assert error.value.cause == "cannot read it: no such file or directory"
    assert_names_file(error.value, tmp_path / "absent.ckpt")
    with pytest.raises(CheckpointError, match="cannot read it: not a regular file"):
        read(tmp_path)


def test_read_tensors_do_not_depend_on_the_file(tmp_path: Path) -> None:
    path = tmp_path / "sample.ckpt"
    state = write_sample(path)
    restored = read(path)
    with path.open("r+b") as file:  # same inode: a mapped tensor would change with it
        file.write(bytes(path.stat().st_size))
    path.unlink()
    assert torch.equal(restored["weights"], state["weights"])
    assert torch.equal(restored["counts"], state["counts"])
    restored["weights"].add_(1.0)  # writable, ordinary memory


@pytest.mark.parametrize(
    ("code", "words"),
    [(errno.ENOSPC, "no space left on device"), (errno.EACCES, "permission denied")],
)
def test_a_failed_write_names_the_cause_removes_the_partial_and_keeps_the_previous_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int, words: str
) -> None:
    path = tmp_path / "model.ckpt"
    previous = write_sample(path)
    before = path.read_bytes()
    real_write = os.write
    calls = 0

    def failing_write(fd: int, data: Any) -> int:
        nonlocal calls
        calls += 1
        if calls >= 3:
            raise OSError(code, os.strerror(code))
        return real_write(fd, data)

    monkeypatch.setattr(file_format.os, "write", failing_write)
    writer = CheckpointWriter(path, encode({"big": torch.ones(1000)}), chunk_bytes=512)
    with pytest.raises(CheckpointError) as error:
        writer.advance(None)
    monkeypatch.undo()
    assert str(error.value) == f"{words} while saving {path}"
    assert error.value.cause == words and error.value.path == path
    assert not writer.partial.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.ckpt"]
    assert path.read_bytes() == before
    assert_same(previous, read(path))
    with pytest.raises(RuntimeError, match="has failed"):
        writer.advance(None)


def test_abort_removes_the_partial_and_keeps_the_previous_file(tmp_path: Path) -> None:
    path = tmp_path / "model.ckpt"
    previous = write_sample(path)
    writer = CheckpointWriter(path, encode({"big": torch.ones(1000)}))
    assert not writer.advance(100)
    assert writer.partial.exists()
    writer.abort()
    assert not writer.partial.exists()
    assert_same(previous, read(path))
    with pytest.raises(RuntimeError, match="aborted"):
        writer.advance(None)


def test_bad_writer_arguments_are_refused_naming_them(tmp_path: Path) -> None:
    encoded = encode({"a": torch.ones(3)})
    with pytest.raises(ValueError, match=r"chunk_bytes=0: must be an integer >= 1"):
        CheckpointWriter(tmp_path / "a.ckpt", encoded, chunk_bytes=0)
    writer = CheckpointWriter(tmp_path / "a.ckpt", encoded)
    for bad in (0, -4, 2.5):
        with pytest.raises(ValueError, match=rf"max_bytes={bad!r}: must be None"):
            writer.advance(bad)  # type: ignore[arg-type]
    assert writer.advance(None)


def test_checkpoint_errors_survive_pickling(tmp_path: Path) -> None:
    error = CheckpointError(tmp_path / "x.ckpt", "checksum mismatch: the file is corrupt")
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.path, copy.cause, str(copy)) == (error.path, error.cause, str(error))


def test_the_file_is_fsynced_before_the_rename_and_the_folder_after(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    events: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace
    path = tmp_path / "durable.ckpt"

    def fsync(fd: int) -> None:
        events.append("fsync folder" if os.path.isdir(f"/proc/self/fd/{fd}") else "fsync file")
        real_fsync(fd)

    def replace(source: Any, target: Any) -> None:
        events.append(f"rename {Path(source).name} -> {Path(target).name}")
        real_replace(source, target)

    if not Path("/proc/self/fd").is_dir():
        pytest.skip("needs /proc to tell a folder's descriptor from a file's")
    monkeypatch.setattr(file_format.os, "fsync", fsync)
    monkeypatch.setattr(file_format.os, "replace", replace)
    write_file(path, {"a": torch.ones(3)})
    assert events == [
        "fsync file",
        "rename durable.ckpt.partial -> durable.ckpt",
        "fsync folder",
    ]


def test_a_header_length_whose_first_byte_is_the_pickle_opcode_still_reads(tmp_path: Path) -> None:
    for pad in range(512):
        state = {"pad": "x" * pad, "w": torch.arange(3.0)}
        if (len(encode(state).header_placeholder) - 8) % 256 == 0x80:
            break
    else:
        pytest.fail("no padding gave a header length ending in 0x80")
    path = tmp_path / "opcode.ckpt"
    write_file(path, state)
    assert path.read_bytes()[:1] == b"\x80"
    assert_same(state, read(path))
