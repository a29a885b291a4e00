"""Fixed capacity, random replacement: a long memory that keeps old experience alive."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from typing_extensions import override

from ami.config_checks import whole_number
from ami.data.buffer import DataBuffer
from ami.data.step import Step


class RandomReplacementBuffer(DataBuffer):
    """Once full, each new chunk of steps replaces a uniformly chosen old chunk.

    Unlike a FIFO, the age of what survives is spread out, so rare early experience is
    not forgotten after ``capacity`` steps. Steps are grouped into chunks of
    ``chunk_length`` consecutive steps so that models needing sequences (dynamics) can
    still sample runs of up to ``chunk_length`` steps; ``chunk_length=1`` is classic
    per-step random replacement. A chunk may span a segment boundary; sequences are
    drawn only from its unbroken parts. A trailing partial chunk waits (unsampled,
    counted in ``buffer/<name>/waiting``) until full.

    Args:
        capacity: Most steps held; rounded down to a multiple of ``chunk_length``.
        chunk_length: Consecutive steps kept together.
        name, keys, dtypes, seed: See :class:`DataBuffer`.
    """

    def __init__(
        self,
        capacity: int,
        chunk_length: int = 1,
        name: str = "experience",
        keys: Sequence[str] | None = None,
        dtypes: Mapping[str, str] | None = None,
        seed: int = 0,
    ) -> None:
        whole_number(f"buffer {name}: capacity", capacity)
        if whole_number(f"buffer {name}: chunk_length", chunk_length) > capacity:
            raise ValueError(
                f"{name}: chunk_length must be in 1..capacity ({capacity}), got {chunk_length}"
            )
        super().__init__(name, capacity - capacity % chunk_length, keys, dtypes, seed)
        self.chunk_length = chunk_length
        self._num_chunks = self.capacity // chunk_length
        self._make_storage((self._num_chunks, chunk_length))
        self._filled_chunks = 0
        self._partial: list[Step] = []
        self._partial_segments: list[int] = []

    @override
    def _add(self, steps: Sequence[Step], segments: Sequence[int]) -> None:
        self._partial.extend(steps)
        self._partial_segments.extend(segments)
        whole = len(self._partial) // self.chunk_length
        if whole == 0:
            return
        cut = whole * self.chunk_length
        ready, self._partial = self._partial[:cut], self._partial[cut:]
        ready_segments, self._partial_segments = (
            self._partial_segments[:cut],
            self._partial_segments[cut:],
        )
        stacked = self._storage.stack(ready, ready_segments)
        for chunk in range(whole):
            part = slice(chunk * self.chunk_length, (chunk + 1) * self.chunk_length)
            values = {key: value[part] for key, value in stacked.items()}
            if self._filled_chunks < self._num_chunks:
                slot = self._filled_chunks
                self._filled_chunks += 1
            else:
                slot = int(torch.randint(self._num_chunks, (1,), generator=self.generator))
                self.evicted += self.chunk_length
            self._storage.write(slot, values)

    @override
    def __len__(self) -> int:
        return self._filled_chunks * self.chunk_length

    @property
    @override
    def longest_sequence(self) -> int:
        return self.chunk_length

    @override
    def _windows(self, length: int) -> torch.Tensor:
        if self._filled_chunks == 0 or length > self.chunk_length:
            return torch.zeros(0, 2, dtype=torch.long)
        segments = self._segments()[: self._filled_chunks]
        same = segments[:, : self.chunk_length - length + 1] == segments[:, length - 1 :]
        return same.nonzero()  # (chunk, start) rows

    @override
    def _window_slots(self, starts: torch.Tensor, length: int) -> tuple[torch.Tensor, ...]:
        return starts[:, :1], starts[:, 1:] + torch.arange(length)

    @override
    def _layout_state(self) -> dict[str, Any]:
        return {
            "filled_chunks": self._filled_chunks,
            "partial": [dict(step) for step in self._partial],
            "partial_segments": list(self._partial_segments),
        }

    @override
    def _load_layout_state(self, state: Mapping[str, Any]) -> None:
        self._filled_chunks = int(state["filled_chunks"])
        self._partial = list(state["partial"])
        self._partial_segments = [int(segment) for segment in state["partial_segments"]]

    @override
    def metrics(self) -> dict[str, float]:
        return {**super().metrics(), "waiting": float(len(self._partial))}
