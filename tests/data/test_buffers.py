import threading
from collections.abc import Callable

import pytest
import torch

from ami.data import DataBuffer, RandomReplacementBuffer, SequentialBuffer, StepCollector
from ami.sharing import OwnershipError


def steps(start: int, stop: int) -> list[dict[str, torch.Tensor]]:
    return [
        {
            "index": torch.tensor(i),
            "observation": torch.full((3, 4, 4), i / 1000.0),
        }
        for i in range(start, stop)
    ]


class TestSequentialBuffer:
    def test_keeps_order_and_evicts_oldest(self) -> None:
        buffer = SequentialBuffer(capacity=5)
        buffer.extend(steps(0, 3))
        assert len(buffer) == 3
        assert buffer.latest(3)["index"].tolist() == [0, 1, 2]
        buffer.extend(steps(3, 8))
        assert len(buffer) == 5
        assert buffer.latest(5)["index"].tolist() == [3, 4, 5, 6, 7]
        assert buffer.evicted == 3
        assert buffer.total_added == 8

    def test_a_take_larger_than_capacity_keeps_the_newest(self) -> None:
        buffer = SequentialBuffer(capacity=4)
        buffer.extend(steps(0, 2))
        buffer.extend(steps(2, 12))
        assert buffer.latest(4)["index"].tolist() == [8, 9, 10, 11]
        assert buffer.evicted == 8

    def test_sequences_are_consecutive_across_the_ring_wrap(self) -> None:
        buffer = SequentialBuffer(capacity=10, seed=1)
        buffer.extend(steps(0, 23))
        batch = buffer.sample_sequences(64, 4)
        index = batch["index"]
        assert index.shape == (64, 4)
        assert torch.all(index[:, 1:] - index[:, :-1] == 1)
        assert index.min() >= 13 and index.max() <= 22
        assert batch["observation"].shape == (64, 4, 3, 4, 4)

    def test_storage_dtype_saves_memory_and_samples_come_back_in_original_dtype(self) -> None:
        buffer = SequentialBuffer(capacity=8, dtypes={"observation": "float16"})
        buffer.extend(steps(0, 4))
        assert buffer.bytes_per_step == 8 + 3 * 4 * 4 * 2 + 8  # index, observation, segment
        sample = buffer.sample(2)
        assert sample["observation"].dtype == torch.float32
        assert sample["index"].dtype == torch.int64

    def test_keys_select_what_is_stored(self) -> None:
        buffer = SequentialBuffer(capacity=4, keys=["index"])
        buffer.extend(steps(0, 2))
        assert set(buffer.sample(1)) == {"index", "segment"}

    def test_bad_input_names_the_problem(self) -> None:
        buffer = SequentialBuffer(capacity=4, name="exp")
        buffer.extend(steps(0, 1))
        with pytest.raises(ValueError, match=r"exp: step key 'observation' has shape \(3, 2, 2\)"):
            buffer.extend([{"index": torch.tensor(1), "observation": torch.zeros(3, 2, 2)}])
        with pytest.raises(KeyError, match="lacks key 'observation'"):
            buffer.extend([{"index": torch.tensor(1)}])
        with pytest.raises(KeyError, match=r"configured keys \['action'\]"):
            SequentialBuffer(capacity=4, keys=["action"]).extend(steps(0, 1))
        with pytest.raises(ValueError, match=r"dtypes\.observation='float99'"):
            SequentialBuffer(capacity=4, dtypes={"observation": "float99"})
        with pytest.raises(ValueError, match=r"sequence length 9"):
            buffer.sample_sequences(1, 9)
        with pytest.raises(ValueError, match="empty"):
            SequentialBuffer(capacity=4).sample(1)

    def test_only_the_writer_extends(self) -> None:
        buffer = SequentialBuffer(capacity=4)
        errors: list[BaseException] = []

        def intruder() -> None:
            try:
                buffer.extend(steps(0, 1))
            except OwnershipError as error:
                errors.append(error)

        thread = threading.Thread(target=intruder, name="inference")
        thread.start()
        thread.join(2)
        assert errors and "experience.extend" in str(errors[0])
        assert len(buffer) == 0


class TestRandomReplacementBuffer:
    def test_fills_then_replaces_random_chunks(self) -> None:
        buffer = RandomReplacementBuffer(capacity=20, chunk_length=4, seed=0)
        buffer.extend(steps(0, 22))
        assert len(buffer) == 20  # 5 whole chunks, 2 steps waiting in a partial chunk
        assert buffer.evicted == 0
        buffer.extend(steps(22, 200))
        assert len(buffer) == 20
        assert buffer.evicted == 200 // 4 * 4 - 20
        kept = buffer._storage.read(slice(None))["index"]
        assert torch.all(kept[:, 1:] - kept[:, :-1] == 1), "chunks stay consecutive"
        assert kept.min() < 180, "unlike a FIFO, random replacement keeps some older chunks"

    def test_sequences_stay_within_chunks(self) -> None:
        buffer = RandomReplacementBuffer(capacity=64, chunk_length=8, seed=3)
        buffer.extend(steps(0, 500))
        index = buffer.sample_sequences(128, 8)["index"]
        assert torch.all(index[:, 1:] - index[:, :-1] == 1)
        with pytest.raises(ValueError, match=r"sequence length 9"):
            buffer.sample_sequences(1, 9)

    def test_single_steps(self) -> None:
        buffer = RandomReplacementBuffer(capacity=10, seed=0)
        buffer.extend(steps(0, 10))
        sample = buffer.sample(1000)
        assert sample["index"].shape == (1000,)
        assert set(sample["index"].tolist()) == set(range(10))

    def test_sampling_is_reproducible_for_a_seed(self) -> None:
        def run(seed: int) -> list[int]:
            buffer = RandomReplacementBuffer(capacity=16, chunk_length=2, seed=seed)
            buffer.extend(steps(0, 100))
            return buffer.sample(8)["index"].tolist()

        assert run(5) == run(5)
        assert run(5) != run(6)

    def test_bad_chunk_length(self) -> None:
        with pytest.raises(ValueError, match=r"chunk_length must be in 1\.\.capacity"):
            RandomReplacementBuffer(capacity=4, chunk_length=5)


def segmented(breaks: set[int], stop: int) -> list[int]:
    """Segment ids for steps 0..stop-1, a new segment starting at each index in ``breaks``."""
    ids, current = [], 0
    for i in range(stop):
        current += i in breaks
        ids.append(current)
    return ids


BUFFERS: dict[str, Callable[[], DataBuffer]] = {
    "sequential": lambda: SequentialBuffer(capacity=64, seed=0),
    "random": lambda: RandomReplacementBuffer(capacity=64, chunk_length=8, seed=0),
}


@pytest.mark.parametrize("kind", list(BUFFERS))
def test_sequences_never_cross_a_segment_boundary(kind: str) -> None:
    buffer = BUFFERS[kind]()
    breaks = {5, 13, 14, 30}
    buffer.extend(steps(0, 40), segmented(breaks, 40))
    index = buffer.sample_sequences(2000, 4)["index"]
    assert torch.all(index[:, 1:] - index[:, :-1] == 1)
    for boundary in breaks:
        crosses = (index[:, :1] < boundary) & (index[:, -1:] >= boundary)
        assert not crosses.any(), f"a sample crosses the break before step {boundary}"
    assert buffer.can_sample(4)
    # Every window within one segment is drawn, and no other (13 alone is too short).
    expected = {0, 1, *range(5, 10), *range(14, 27), *range(30, 37)}
    if kind == "random":  # chunks of 8 steps: a window also stays inside its chunk
        expected = {start for start in expected if start % 8 <= 8 - 4}
    assert set(index[:, 0].tolist()) == expected


@pytest.mark.parametrize("kind", list(BUFFERS))
def test_no_window_long_enough_means_no_sample_and_a_clear_error(kind: str) -> None:
    buffer = BUFFERS[kind]()
    buffer.extend(steps(0, 16), [i // 2 for i in range(16)])  # segments of two steps
    assert buffer.can_sample(2)
    assert not buffer.can_sample(3)
    with pytest.raises(ValueError, match="no run of 3 consecutive steps without a break"):
        buffer.sample_sequences(1, 3)


def test_a_drop_and_a_pause_in_the_middle_of_the_data_split_the_sequences() -> None:
    """Collector to buffer, as the runtime hands steps over: index jumps never appear."""
    collector = StepCollector(max_pending=10)
    buffer = SequentialBuffer(capacity=200, seed=0)
    index = 0

    def append(count: int) -> None:
        nonlocal index
        for _ in range(count):
            collector.append({"index": torch.tensor(index)})
            index += 1

    def take() -> None:
        taken = collector.take()
        buffer.extend(taken, taken.segments)

    append(3)
    take()
    append(20)  # 3..12 are dropped: the pending queue holds 10
    take()
    append(5)
    collector.begin_segment()  # a pause between 27 and 28
    append(5)
    take()
    stored = buffer.latest(len(buffer))
    assert stored["index"].tolist() == [0, 1, 2, *range(13, 33)]
    sample = buffer.sample_sequences(3000, 3)["index"]
    assert torch.all(sample[:, 1:] - sample[:, :-1] == 1), "no sample spans the lost steps"
    assert not ((sample[:, :1] < 28) & (sample[:, -1:] >= 28)).any(), "none spans the pause"
    assert ((sample[:, :1] < 23) & (sample[:, -1:] >= 23)).any(), "a take is no break"
    assert (sample[:, 0] == 0).any(), "the steps before the drop are still sampled"


@pytest.mark.parametrize("method", ["sample", "sample_sequences", "latest"])
def test_only_the_writer_samples(method: str) -> None:
    buffer = SequentialBuffer(capacity=8)
    buffer.extend(steps(0, 4))
    errors: list[BaseException] = []

    def intruder() -> None:
        try:
            getattr(buffer, method)(*((1,) if method != "sample_sequences" else (1, 2)))
        except OwnershipError as error:
            errors.append(error)

    thread = threading.Thread(target=intruder, name="inference")
    thread.start()
    thread.join(10)
    assert errors and f"experience.{method}" in str(errors[0])


def frames(count: int, seed: int = 0) -> list[dict[str, torch.Tensor]]:
    generator = torch.Generator().manual_seed(seed)
    return [{"observation": torch.rand(3, 4, 4, generator=generator)} for _ in range(count)]


def test_uint8_observations_are_stored_scaled_and_come_back_as_floats() -> None:
    """Before: every frame was stored as 0, and the run learned black images."""
    buffer = SequentialBuffer(capacity=8, dtypes={"observation": "uint8"})
    data = frames(4)
    buffer.extend(data)
    stored = buffer.latest(4)["observation"]
    assert stored.dtype == torch.float32
    expected = torch.stack([d["observation"] for d in data])
    assert (stored - expected).abs().max() <= 0.5 / 255 + 1e-6
    assert stored.max() > 0.9, "not black"
    exact = {"observation": torch.arange(48).reshape(3, 4, 4) / 255.0}
    buffer.extend([exact])
    assert torch.equal(buffer.latest(1)["observation"][0], exact["observation"])
    assert buffer.bytes_per_step == 48 + 8


def test_storage_dtypes_that_cannot_round_trip_are_refused_naming_the_key() -> None:
    with pytest.raises(
        ValueError, match=r"buffer exp: dtypes\.observation='int7' is not a storage"
    ):
        SequentialBuffer(capacity=4, name="exp", dtypes={"observation": "int7"})
    with pytest.raises(ValueError, match=r"dtypes\.observation=int16 cannot store"):
        SequentialBuffer(capacity=4, dtypes={"observation": "int16"}).extend(frames(1))
    loud = SequentialBuffer(capacity=4, dtypes={"observation": "uint8"})
    with pytest.raises(ValueError, match=r"dtypes\.observation=uint8 stores values in \[0, 1\]"):
        loud.extend([{"observation": torch.full((3, 4, 4), 2.0)}])
    with pytest.raises(ValueError, match=r"dtypes\.observation=uint8 stores values in \[0, 1\]"):
        loud.extend([{"observation": torch.full((3, 4, 4), float("nan"))}])
    half = SequentialBuffer(capacity=4, dtypes={"observation": "float16"})
    with pytest.raises(ValueError, match=r"dtypes\.observation=float16 holds values up to 65504"):
        half.extend([{"observation": torch.full((3, 4, 4), 1e5)}])
    empty = SequentialBuffer(capacity=4, dtypes={"observation": "uint8"})
    empty.extend([{"observation": torch.zeros(0)}])
    assert empty.latest(1)["observation"].shape == (1, 0)
    narrow = SequentialBuffer(capacity=4, dtypes={"index": "int8"})
    narrow.extend([{"index": torch.tensor(100)}])
    with pytest.raises(ValueError, match=r"dtypes\.index=int8 cannot hold this step's values"):
        narrow.extend([{"index": torch.tensor(300)}])
    assert narrow.latest(1)["index"].tolist() == [100], "nothing stored is lost"
    with pytest.raises(ValueError, match=r"dtypes are set for \['observaton'\]"):
        SequentialBuffer(capacity=4, keys=["observation"], dtypes={"observaton": "float16"})
