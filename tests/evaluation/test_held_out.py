"""Held-out blocks: which steps, where they go, and that training never bridges them."""

from __future__ import annotations

import pytest
import torch

from ami.data import RandomReplacementBuffer, SequentialBuffer
from ami.evaluation import HoldOut


def steps(first: int, count: int) -> list[dict[str, torch.Tensor]]:
    return [
        {"image": torch.full((3, 4, 4), float(i)), "action": torch.tensor([i])}
        for i in range(first, first + count)
    ]


def test_the_last_length_steps_of_every_period_are_held_out() -> None:
    hold_out = HoldOut(period=10, length=3, keep=100, keys=["image"])

    held = [i for i in range(30) if hold_out.is_held_out(i)]

    assert held == [7, 8, 9, 17, 18, 19, 27, 28, 29]


def test_takes_of_any_size_hold_out_the_same_steps_as_one_take() -> None:
    whole = HoldOut(period=10, length=3, keep=100, keys=["image"])
    whole.split(steps(0, 40), [1] * 40, first_index=0)
    pieces = HoldOut(period=10, length=3, keep=100, keys=["image"])
    first = 0
    for size in (1, 6, 2, 13, 5, 13):
        pieces.split(steps(first, size), [1] * size, first_index=first)
        first += size

    assert [s.index for s in pieces.steps] == [s.index for s in whole.steps]
    assert [s.index for s in whole.steps] == [7, 8, 9, 17, 18, 19, 27, 28, 29, 37, 38, 39]


def test_kept_steps_change_segment_at_every_block_and_ids_only_grow() -> None:
    hold_out = HoldOut(period=10, length=3, keep=100, keys=["image"])
    segments = [4] * 15 + [5] * 15  # the collector broke the stream at step 15

    kept, ids = hold_out.split(steps(0, 30), segments, first_index=0)

    indices = [int(step["action"]) for step in kept]
    assert all(not hold_out.is_held_out(i) for i in indices)
    assert ids == sorted(ids)
    for (a, id_a), (b, id_b) in zip(zip(indices, ids), zip(indices[1:], ids[1:]), strict=False):
        consecutive = b == a + 1 and segments[a] == segments[b]
        assert (id_a == id_b) == consecutive, (a, b)


@pytest.mark.parametrize("kind", ["random", "sequential"])
def test_a_buffer_fed_the_kept_steps_never_samples_across_a_block(kind: str) -> None:
    hold_out = HoldOut(period=13, length=4, keep=100, keys=["image"])
    buffer = (
        RandomReplacementBuffer(capacity=256, chunk_length=8, seed=0)
        if kind == "random"
        else SequentialBuffer(capacity=256, seed=0)
    )
    first = 0
    for size in (7, 30, 11, 50, 22):
        kept, ids = hold_out.split(steps(first, size), [0] * size, first_index=first)
        buffer.extend(kept, ids)
        first += size

    for _ in range(20):
        batch = buffer.sample_sequences(16, 5)
        index = batch["action"][..., 0]
        assert torch.equal(index[:, 1:] - index[:, :-1], torch.ones(16, 4, dtype=index.dtype))
        assert not any(hold_out.is_held_out(int(i)) for i in index.flatten())


def test_held_out_steps_keep_only_their_keys_and_the_newest_keep() -> None:
    hold_out = HoldOut(period=10, length=5, keep=7, keys=["image", "truth/pose"])
    data = [{**step, "truth/pose": torch.zeros(4)} for step in steps(0, 30)]

    hold_out.split(data, [0] * 30, first_index=0)

    assert [s.index for s in hold_out.steps] == [18, 19, 25, 26, 27, 28, 29]
    assert set(hold_out.steps[0].data) == {"image", "truth/pose"}
    assert hold_out.steps[0].data["image"].dtype == torch.float32  # too small to compact


def test_runs_break_at_a_gap_and_at_a_new_segment() -> None:
    hold_out = HoldOut(period=10, length=4, keep=100, keys=["image"])
    hold_out.split(steps(0, 20), [0] * 8 + [1] * 12, first_index=0)

    runs = [[s.index for s in run] for run in hold_out.runs()]

    assert runs == [[6, 7], [8, 9], [16, 17, 18, 19]]
    assert [[s.index for s in run] for run in hold_out.runs(since=10)] == [[16, 17, 18, 19]]


def test_frames_are_kept_at_half_precision() -> None:
    hold_out = HoldOut(period=2, length=1, keep=10, keys=["image"])
    hold_out.split([{"image": torch.rand(3, 32, 32)}] * 2, [0, 0], first_index=0)

    assert hold_out.steps[0].data["image"].dtype == torch.float16


def test_the_kept_steps_survive_a_state_round_trip() -> None:
    hold_out = HoldOut(period=10, length=3, keep=100, keys=["image"])
    hold_out.split(steps(0, 25), [3] * 25, first_index=0)
    copy = HoldOut(period=10, length=3, keep=100, keys=["image"])

    copy.load_state_dict(hold_out.state_dict())

    assert [(s.index, s.segment) for s in copy.steps] == [
        (s.index, s.segment) for s in hold_out.steps
    ]
    assert torch.equal(copy.steps[-1].data["image"], hold_out.steps[-1].data["image"])


@pytest.mark.parametrize(
    ("period", "length", "message"),
    [(10, 10, "must be below evaluation.period=10"), (1, 1, "evaluation.period=1")],
)
def test_a_schedule_that_leaves_nothing_to_train_on_is_refused(
    period: int, length: int, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        HoldOut(period=period, length=length, keep=10, keys=["image"])
