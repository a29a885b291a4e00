"""FIFO with order kept: the most recent ``capacity`` steps, for models that need sequences."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from typing_extensions import override

from ami.data.buffer import DataBuffer
from ami.data.step import Step


class SequentialBuffer(DataBuffer):
    """A ring of the latest steps; once full, each new step evicts the oldest.

    Args:
        capacity: Most steps held.
        name, keys, dtypes, seed: See :class:`DataBuffer`.
    """

    def __init__(
        self,
        capacity: int,
        name: str = "experience",
        keys: Sequence[str] | None = None,
        dtypes: Mapping[str, str] | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__(name, capacity, keys, dtypes, seed)
        self._make_storage((capacity,))
        self._oldest = 0
        self._size = 0

    @override
    def _add(self, steps: Sequence[Step]) -> None:
        if len(steps) > self.capacity:
            self.evicted += len(steps) - self.capacity
            steps = steps[-self.capacity :]
        stacked = self._storage.stack(steps)
        count = len(steps)
        first = (self._oldest + self._size) % self.capacity
        index = (first + torch.arange(count)) % self.capacity
        self._storage.write(index, stacked)
        overflow = max(0, self._size + count - self.capacity)
        self.evicted += overflow
        self._oldest = (self._oldest + overflow) % self.capacity
        self._size = min(self.capacity, self._size + count)

    @override
    def __len__(self) -> int:
        return self._size

    @property
    @override
    def max_sequence_length(self) -> int:
        return max(self._size, 1)

    @property
    @override
    def longest_sequence(self) -> int:
        return self.capacity

    def _physical(self, logical: torch.Tensor) -> torch.Tensor:
        return (self._oldest + logical) % self.capacity

    @override
    def sample_sequences(self, batch_size: int, length: int) -> dict[str, torch.Tensor]:
        self._check_sample_args(batch_size, length)
        starts = torch.randint(self._size - length + 1, (batch_size, 1), generator=self.generator)
        return self._storage.read(self._physical(starts + torch.arange(length)))

    def latest(self, count: int) -> dict[str, torch.Tensor]:
        """The newest ``count`` steps in order, each key shaped ``(count, ...)``."""
        if not 1 <= count <= self._size:
            raise ValueError(
                f"{self.shared_name}: latest({count}) needs 1..{self._size} stored steps"
            )
        return self._storage.read(self._physical(torch.arange(self._size - count, self._size)))
