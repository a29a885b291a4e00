"""A resumed run continues the first one exactly, bit for bit, on the CPU.

Three runs of the default experiment (curious agent, world model, sim world), driven in
single-step mode (``tests/lockstep.py``) so that timing cannot change what they do:

- A: N + M steps in one go, with a pause after step N;
- B: N steps, then stop (the final checkpoint, buffers included);
- C: resumed from B's checkpoint, M more steps.

A resume is a gap in time like a pause, so A pauses where B stopped. A's final
checkpoint and C's must then hold the same state: every tensor (both copies of every
model, optimizer moments, buffers, generator states) and every counter.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import lockstep
import pytest
import torch

from ami.checkpoints import CheckpointStore, read

N, M = 40, 40

pytestmark = [
    pytest.mark.usefixtures("keep_main_thread_name"),
    pytest.mark.slow,
    pytest.mark.timeout(600),
]


def differences(a: Any, b: Any, path: str = "") -> list[str]:
    """Where two states differ (paths), tensors compared bit for bit with their dtypes."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        same = (
            isinstance(a, torch.Tensor)
            and isinstance(b, torch.Tensor)
            and a.dtype == b.dtype
            and a.shape == b.shape
            and torch.equal(a, b)
        )
        return [] if same else [path]
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        found = [f"{path}.{key}" for key in set(a) ^ set(b)]
        for key in set(a) & set(b):
            found += differences(a[key], b[key], f"{path}.{key}")
        return found
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        if len(a) != len(b):
            return [path]
        return [f for i, (x, y) in enumerate(zip(a, b)) for f in differences(x, y, f"{path}[{i}]")]
    return [] if a == b else [f"{path}: {a!r} != {b!r}"]


def without_run(state: Mapping[str, Any]) -> dict[str, Any]:
    """The state without the run's own record (its config, clock and reason)."""
    return {key: value for key, value in state.items() if key != "run"}


def run(tmp: Path, name: str, stop_after: int, *extra: str) -> dict[str, Any]:
    """One lockstep run of the default experiment; its final checkpoint's state."""
    return read(lockstep.run_default(tmp / name, stop_after, *extra))


def test_a_resumed_run_continues_an_uninterrupted_one_bit_for_bit(tmp_path: Path) -> None:
    uninterrupted = run(tmp_path, "a", N + M, f"+threads.inference.pause_at={N}")
    first = run(tmp_path, "b", N)
    checkpoint = CheckpointStore(tmp_path / "b" / "checkpoints").latest()
    resumed = run(tmp_path, "c", N + M, f"resume_from={checkpoint}")
    trainers = uninterrupted["training"]["trainers"]
    assert all(t["runs"] > 0 for t in trainers.values()), "every trainer ran in the test"
    assert first["training"]["trainers"] != trainers, "the second half changed the state"
    assert differences(without_run(uninterrupted), without_run(resumed)) == []


def test_after_a_resume_every_piece_of_state_equals_what_was_saved(tmp_path: Path) -> None:
    saved = run(tmp_path, "b", N)
    checkpoint = CheckpointStore(tmp_path / "b" / "checkpoints").latest()
    loaded = run(tmp_path, "c", N, f"resume_from={checkpoint}")  # resumed, zero steps
    diff = differences(without_run(saved), without_run(loaded))
    # The one difference by design: the resumed run starts a new segment of experience.
    last_id = saved["inference"]["collector"]["last_id"]
    assert diff == [f".inference.collector.last_id: {last_id} != {last_id + 1}"]
    assert loaded["run"]["resumed_from"] == str(checkpoint)
