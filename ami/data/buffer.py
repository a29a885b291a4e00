"""The training thread's dataset: experience merged from the collector, sampled in batches."""

from __future__ import annotations

import itertools
import logging
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch

from ami.config_checks import whole_number
from ami.data.step import SEGMENT, Step
from ami.data.storage import TensorStorage, parse_dtypes
from ami.sharing import Owned, writes

logger = logging.getLogger(__name__)

_MERGE_BLOCK = 1024
_UNSEGMENTED = -2
"""Segment id of steps added without ids (one continuous stream)."""


class DataBuffer(Owned, ABC):
    """A bounded store of steps that the training thread writes and samples.

    Subclasses decide where a new step goes once the buffer is full (and so which old
    step is evicted). Every eviction is counted in :attr:`evicted`, and the first one
    is logged, so that a capacity too small for an experiment is visible. Sampling
    changes the buffer's generator, so it is a write too: only the training thread
    samples. Sequences never cross a segment boundary (see :mod:`ami.data.collector`).

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
        self._dtypes = parse_dtypes(f"buffer {name}", dtypes)
        if self._keys is not None and not set(self._dtypes) <= set(self._keys):
            raise ValueError(
                f"buffer {name}: dtypes are set for {sorted(set(self._dtypes) - set(self._keys))}, "
                f"which are not among its keys {self._keys}"
            )
        self.generator = torch.Generator().manual_seed(seed)
        self.total_added = 0
        """Steps ever added; trainers compare it with their own mark to see new data."""
        self.evicted = 0
        """Steps overwritten or pushed out because the buffer was full."""
        self._window_cache: dict[int, torch.Tensor] = {}
        """Windows per length, until the next write: each optimizer step samples."""
        self._storage: TensorStorage

    @property
    def configured_keys(self) -> list[str] | None:
        """The step keys this buffer stores (None: every key of the first step)."""
        return None if self._keys is None else list(self._keys)

    @property
    def configured_dtypes(self) -> dict[str, torch.dtype]:
        """Storage dtype per key where the config sets one."""
        return dict(self._dtypes)

    def _make_storage(self, slots_shape: tuple[int, ...]) -> TensorStorage:
        """Storage with the configured keys and dtypes; subclasses choose the slot layout."""
        self._storage = TensorStorage(self.shared_name, slots_shape, self._keys, self._dtypes)
        return self._storage

    @writes
    def extend(self, steps: Iterable[Step], segments: Iterable[int] | None = None) -> None:
        """Add steps in order, in blocks so that large takes do not double memory.

        Args:
            steps: Consecutive steps.
            segments: Each step's segment id (:attr:`TakenSteps.segments`); None puts
                them all into one segment, continuing the previous ``None`` call's.
        """
        ids = iter(segments) if segments is not None else itertools.repeat(_UNSEGMENTED)
        block: list[Step] = []
        block_ids: list[int] = []
        for step, segment in zip(steps, ids):  # noqa: B905 (ids may be endless)
            block.append(step)
            block_ids.append(segment)
            if len(block) == _MERGE_BLOCK:
                self._add_block(block, block_ids)
                block, block_ids = [], []
        if block:
            self._add_block(block, block_ids)

    def _add_block(self, steps: Sequence[Step], segments: Sequence[int]) -> None:
        self._window_cache.clear()
        evicted_before = self.evicted
        self._add(steps, segments)
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
    def _add(self, steps: Sequence[Step], segments: Sequence[int]) -> None:
        """Store a block of consecutive steps and their segment ids, updating :attr:`evicted`."""

    @abstractmethod
    def __len__(self) -> int:
        """Steps available for sampling."""

    @property
    @abstractmethod
    def longest_sequence(self) -> int:
        """Longest run of consecutive steps this buffer can ever return (when full)."""

    @abstractmethod
    def _windows(self, length: int) -> torch.Tensor:
        """Every place a run of ``length`` steps of one segment starts, as storage indices.

        Shaped ``(windows, index dims)``: one row per window, with the indices that
        :meth:`_window_slots` turns into the run's slots.
        """

    @abstractmethod
    def _window_slots(
        self, starts: torch.Tensor, length: int
    ) -> torch.Tensor | tuple[torch.Tensor, ...]:
        """Storage index of each step of the windows that start at ``starts``.

        ``starts`` are rows of :meth:`_windows`.
        """

    def can_sample(self, length: int) -> bool:
        """Whether at least one run of ``length`` consecutive steps of one segment is stored."""
        return (
            1 <= length <= self.longest_sequence
            and len(self) > 0
            and bool(len(self._cached_windows(length)))
        )

    def _cached_windows(self, length: int) -> torch.Tensor:
        windows = self._window_cache.get(length)
        if windows is None:
            windows = self._window_cache[length] = self._windows(length)
        return windows

    @writes
    def sample_sequences(
        self, batch_size: int, length: int, generator: torch.Generator | None = None
    ) -> dict[str, torch.Tensor]:
        """Random runs of consecutive steps, each key shaped ``(batch, length, ...)``.

        Runs are drawn uniformly among all places where ``length`` consecutive steps of
        one segment are stored, so no sample spans a pause, a drop or a world reset.

        Args:
            batch_size: Runs to draw.
            length: Steps per run.
            generator: Draws with this generator instead of the buffer's own: samples
                taken for display (image panels, on a wall-clock schedule) must not
                shift the training samples of a seeded run.
        """
        self._check_sample_args(batch_size, length)
        windows = self._cached_windows(length)
        if not len(windows):
            raise ValueError(
                f"{self.shared_name}: no run of {length} consecutive steps without a break "
                "(pause, drop, reset) is stored yet"
            )
        draws = torch.randint(len(windows), (batch_size,), generator=generator or self.generator)
        chosen = windows[draws]
        return self._storage.read(self._window_slots(chosen, length))

    @writes
    def sample(self, batch_size: int) -> dict[str, torch.Tensor]:
        """Random single steps, each key shaped ``(batch, ...)``."""
        return {key: value[:, 0] for key, value in self.sample_sequences(batch_size, 1).items()}

    @writes
    def state_dict(self) -> dict[str, Any]:
        """Everything stored, the counters and the sampling generator (see ami.state)."""
        return {
            "total_added": self.total_added,
            "evicted": self.evicted,
            "generator": self.generator.get_state(),
            "storage": self._storage.state_dict(),
            **self._layout_state(),
        }

    @writes
    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict` into a buffer built from the same config."""
        self._window_cache.clear()
        self._storage.load_state_dict(state["storage"])
        self.total_added = int(state["total_added"])
        self.evicted = int(state["evicted"])
        self.generator.set_state(state["generator"])
        self._load_layout_state(state)

    @abstractmethod
    def _layout_state(self) -> dict[str, Any]:
        """Where the steps sit in the slots (the subclass's own bookkeeping)."""

    @abstractmethod
    def _load_layout_state(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`_layout_state`."""

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
        if not 1 <= length <= self.longest_sequence:
            raise ValueError(
                f"{self.shared_name}: sequence length {length} is outside "
                f"1..{self.longest_sequence} for this buffer"
            )

    def _segments(self) -> torch.Tensor:
        return self._storage.column(SEGMENT)
