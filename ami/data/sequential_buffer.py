"""FIFO with order kept: the most recent ``capacity`` steps, for models that need sequences."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from typing_extensions import override

from ami.data.buffer import DataBuffer
from ami.data.step import Step
from ami.sharing import writes


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
    def _add(self, steps: Sequence[Step], segments: Sequence[int]) -> None:
        if len(steps) > self.capacity:
            self.evicted += len(steps) - self.capacity
            steps, segments = steps[-self.capacity :], segments[-self.capacity :]
        stacked = self._storage.stack(steps, segments)
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
    def longest_sequence(self) -> int:
        return self.capacity

    @override
    def _layout_state(self) -> dict[str, Any]:
        return {"oldest": self._oldest, "size": self._size}

    @override
    def _load_layout_state(self, state: Mapping[str, Any]) -> None:
        self._oldest, self._size = int(state["oldest"]), int(state["size"])

    def _physical(self, logical: torch.Tensor) -> torch.Tensor:
        return (self._oldest + logical) % self.capacity

    @override
    def _windows(self, length: int) -> torch.Tensor:
        if self._size < length:
            return torch.zeros(0, 1, dtype=torch.long)
        segments = self._segments()[self._physical(torch.arange(self._size))]
        same = segments[: self._size - length + 1] == segments[length - 1 :]
        return same.nonzero()  # logical starts: ids are unique per run, so equal ends suffice

    @override
    def _window_slots(self, starts: torch.Tensor, length: int) -> torch.Tensor:
        return self._physical(starts + torch.arange(length))

    @writes
    def latest(self, count: int) -> dict[str, torch.Tensor]:
        """The newest ``count`` steps in order, each key shaped ``(count, ...)``.

        They may span segments; ``segment`` tells where one ends (PPO's advantages
        stop there). Only the owning thread reads the storage it is writing.
        """
        if not 1 <= count <= self._size:
            raise ValueError(
                f"{self.shared_name}: latest({count}) needs 1..{self._size} stored steps"
            )
        return self._storage.read(self._physical(torch.arange(self._size - count, self._size)))
