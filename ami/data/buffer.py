"""The training thread's dataset: experience merged from the collector, sampled in batches."""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence

import torch

from ami.config_checks import whole_number
from ami.data.step import Step
from ami.data.storage import TensorStorage, parse_dtypes
from ami.sharing import Owned, writes

logger = logging.getLogger(__name__)

_MERGE_BLOCK = 1024


class DataBuffer(Owned, ABC):
    """A bounded store of steps that the training thread writes and samples.

    Subclasses decide where a new step goes once the buffer is full (and so which old
    step is evicted). Every eviction is counted in :attr:`evicted`, and the first one
    is logged, so that a capacity too small for an experiment is visible.

    Args:
        name: Name in logs, errors and metrics (``buffer/<name>/...``).
        capacity: Most steps held.
        keys: Step keys to store; None stores every key of the first step.
        dtypes: Storage dtype per key, e.g. ``{"observation": "float16"}``.
        seed: Seed of the sampling generator.
    """

    def __init__(
        self,
        name: str,
        capacity: int,
        keys: Sequence[str] | None = None,
        dtypes: Mapping[str, str] | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__(name)
        whole_number(f"buffer {name}: capacity", capacity)
        self.capacity = capacity
        self._keys = list(keys) if keys is not None else None
        self._dtypes = parse_dtypes(name, dtypes)
        self.generator = torch.Generator().manual_seed(seed)
        self.total_added = 0
        """Steps ever added; trainers compare it with their own mark to see new data."""
        self.evicted = 0
        """Steps overwritten or pushed out because the buffer was full."""
        self._storage: TensorStorage

    def _make_storage(self, slots_shape: tuple[int, ...]) -> TensorStorage:
        """Storage with the configured keys and dtypes; subclasses choose the slot layout."""
        self._storage = TensorStorage(self.shared_name, slots_shape, self._keys, self._dtypes)
        return self._storage

    @writes
    def extend(self, steps: Iterable[Step]) -> None:
        """Add steps in order, in blocks so that large takes do not double memory."""
        block: list[Step] = []
        for step in steps:
            block.append(step)
            if len(block) == _MERGE_BLOCK:
                self._add_block(block)
                block = []
        if block:
            self._add_block(block)

    def _add_block(self, steps: Sequence[Step]) -> None:
        evicted_before = self.evicted
        self._add(steps)
        self.total_added += len(steps)
        if evicted_before == 0 and self.evicted > 0:
            logger.info(
                "buffer %s is full (%d steps); from now on new steps evict old ones "
                "(counted in buffer/%s/evicted)",
                self.shared_name,
                self.capacity,
                self.shared_name,
            )

    @abstractmethod
    def _add(self, steps: Sequence[Step]) -> None:
        """Store a block of consecutive steps, updating :attr:`evicted`."""

    @abstractmethod
    def __len__(self) -> int:
        """Steps available for sampling."""

    @property
    @abstractmethod
    def max_sequence_length(self) -> int:
        """Longest run of consecutive steps :meth:`sample_sequences` can return now."""

    @property
    @abstractmethod
    def longest_sequence(self) -> int:
        """Longest run of consecutive steps this buffer can ever return (when full)."""

    @abstractmethod
    def sample_sequences(self, batch_size: int, length: int) -> dict[str, torch.Tensor]:
        """Random runs of consecutive steps, each key shaped ``(batch, length, ...)``."""

    def sample(self, batch_size: int) -> dict[str, torch.Tensor]:
        """Random single steps, each key shaped ``(batch, ...)``."""
        return {key: value[:, 0] for key, value in self.sample_sequences(batch_size, 1).items()}

    @property
    def bytes_per_step(self) -> int:
        """Memory per stored step (0 before the first step arrives)."""
        return self._storage.bytes_per_slot() if self._storage.allocated else 0

    def metrics(self) -> dict[str, float]:
        """Fill level and evictions, logged by the training thread."""
        return {
            "size": float(len(self)),
            "total_added": float(self.total_added),
            "evicted": float(self.evicted),
        }

    def _check_sample_args(self, batch_size: int, length: int) -> None:
        if len(self) == 0:
            raise ValueError(f"{self.shared_name}: cannot sample from an empty buffer")
        if batch_size < 1:
            raise ValueError(f"{self.shared_name}: batch_size must be >= 1, got {batch_size}")
        if not 1 <= length <= self.max_sequence_length:
            raise ValueError(
                f"{self.shared_name}: sequence length {length} is outside "
                f"1..{self.max_sequence_length} for this buffer"
            )
