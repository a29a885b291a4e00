import threading

import pytest
import torch

from ami.data import RandomReplacementBuffer, SequentialBuffer
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
        assert buffer.bytes_per_step == 8 + 3 * 4 * 4 * 2
        sample = buffer.sample(2)
        assert sample["observation"].dtype == torch.float32
        assert sample["index"].dtype == torch.int64

    def test_keys_select_what_is_stored(self) -> None:
        buffer = SequentialBuffer(capacity=4, keys=["index"])
        buffer.extend(steps(0, 2))
        assert set(buffer.sample(1)) == {"index"}

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
