"""Preallocated tensor storage for buffers: one tensor per key, indexed by slot."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from ami.data.dtypes import check_storable, from_storage, storage_dtype, to_storage
from ami.data.step import SEGMENT, Step


def parse_dtypes(name: str, dtypes: Mapping[str, str] | None) -> dict[str, torch.dtype]:
    """Turn ``{"observation": "float16"}`` into torch dtypes, naming a bad entry clearly."""
    return {
        str(key): storage_dtype(f"{name}: dtypes.{key}", dtype_name)
        for key, dtype_name in (dtypes or {}).items()
        if dtype_name is not None  # null: the key's own dtype
    }


class TensorStorage:
    """Slots of step data, allocated on the first write from that step's shapes.

    Allocation waits for data so that configs need not repeat observation sizes, and
    every later step is checked against the first: a wrong shape fails with the key,
    the shape it has and the one stored, instead of corrupting a batch much later.
    Besides the steps' keys it keeps each slot's segment id (key ``segment``), which
    sequence sampling reads to stay within one unbroken run of steps.

    Args:
        name: Owner's name, for error messages.
        slots_shape: Leading shape of each tensor, e.g. ``(capacity,)``.
        keys: Keys to keep; None keeps every key of the first step.
        dtypes: Storage dtype per key (e.g. float16 to halve observation memory; see
            :mod:`ami.data.dtypes`); samples come back in the step's original dtype.
    """

    def __init__(
        self,
        name: str,
        slots_shape: tuple[int, ...],
        keys: Sequence[str] | None,
        dtypes: Mapping[str, torch.dtype],
    ) -> None:
        self._name = name
        self._slots_shape = slots_shape
        self._keys = list(keys) if keys is not None else None
        self._dtypes = dict(dtypes)
        self._data: dict[str, torch.Tensor] = {}
        self._item_dtypes: dict[str, torch.dtype] = {}

    @property
    def allocated(self) -> bool:
        """Whether the first step has arrived."""
        return bool(self._data)

    def bytes_per_slot(self) -> int:
        """Memory of one slot over all keys, once allocated."""
        slots = 1
        for size in self._slots_shape:
            slots *= size
        return sum(t.element_size() * t.numel() for t in self._data.values()) // max(slots, 1)

    def stack(self, steps: Sequence[Step], segments: Sequence[int]) -> dict[str, torch.Tensor]:
        """Stack steps (and their segment ids) into one tensor per stored key.

        Checks keys, shapes and that values fit their storage dtype.
        """
        if not self._data:
            self._allocate(steps[0])
        stacked: dict[str, torch.Tensor] = {SEGMENT: torch.tensor(segments, dtype=torch.int64)}
        for key, store in self._data.items():
            if key == SEGMENT:
                continue
            try:
                values = [step[key] for step in steps]
            except KeyError:
                raise KeyError(
                    f"{self._name}: a step lacks key {key!r}; steps here carry "
                    f"{sorted(self._data)} (got {sorted(next(s for s in steps if key not in s))})"
                ) from None
            item_shape = store.shape[len(self._slots_shape) :]
            for value in values:
                if value.shape != item_shape:
                    raise ValueError(
                        f"{self._name}: step key {key!r} has shape {tuple(value.shape)}, "
                        f"but this buffer stores {tuple(item_shape)} (set by the first step)"
                    )
            stacked[key] = to_storage(self._dtype_key(key), torch.stack(values), store.dtype)
        return stacked

    def write(self, index: int | slice | torch.Tensor, values: Mapping[str, torch.Tensor]) -> None:
        """Write stacked values into slots ``index``."""
        for key, store in self._data.items():
            store[index] = values[key]

    def read(
        self, index: torch.Tensor | slice | tuple[torch.Tensor, ...]
    ) -> dict[str, torch.Tensor]:
        """Gather slots, converted back to each key's original dtype."""
        return {
            key: from_storage(store[index], self._item_dtypes[key])
            for key, store in self._data.items()
        }

    def state_dict(self) -> dict[str, Any]:
        """The stored tensors and the steps' own dtypes (empty before the first step)."""
        return {
            "columns": dict(self._data),
            "item_dtypes": {
                key: str(dtype).removeprefix("torch.") for key, dtype in self._item_dtypes.items()
            },
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict`, checking it fits this storage's slots and dtypes.

        Raises:
            ValueError: Another slot layout (capacity, chunk length), other keys or
                other storage dtypes than this buffer's config: names what differs.
        """
        columns: Mapping[str, torch.Tensor] = state["columns"]
        for key, column in columns.items():
            slots = tuple(column.shape[: len(self._slots_shape)])
            if slots != self._slots_shape:
                raise ValueError(
                    f"{self._name}: the saved buffer holds {slots} slots, this one "
                    f"{self._slots_shape} (buffer.capacity or chunk_length changed)"
                )
            wanted = self._dtypes.get(key)
            if key != SEGMENT and wanted is not None and column.dtype != wanted:
                raise ValueError(
                    f"{self._name}: the saved buffer stores {key} as {column.dtype}, this "
                    f"one as {wanted} (dtypes.{key} changed)"
                )
        if columns and self._keys is not None and set(columns) - {SEGMENT} != set(self._keys):
            raise ValueError(
                f"{self._name}: the saved buffer stores {sorted(set(columns) - {SEGMENT})}, "
                f"this one {sorted(self._keys)} (keys changed)"
            )
        self._data = {key: column.clone() for key, column in columns.items()}
        self._item_dtypes = {
            key: getattr(torch, name) for key, name in state["item_dtypes"].items()
        }

    def column(self, key: str) -> torch.Tensor:
        """The whole stored tensor of ``key`` (e.g. ``segment``), for reading only."""
        return self._data[key]

    def _dtype_key(self, key: str) -> str:
        return f"{self._name}: dtypes.{key}"

    def _allocate(self, step: Step) -> None:
        keys = self._keys if self._keys is not None else list(step)
        missing = [key for key in keys if key not in step]
        if missing:
            raise KeyError(
                f"{self._name}: configured keys {missing} are not in the steps, which "
                f"carry {sorted(step)}"
            )
        unused = sorted(set(self._dtypes) - set(keys))
        if unused:
            raise KeyError(
                f"{self._name}: dtypes are set for {unused}, which this buffer does not "
                f"store (it stores {sorted(keys)})"
            )
        if SEGMENT in keys:
            raise KeyError(
                f"{self._name}: steps may not carry a key named {SEGMENT!r}; buffers keep "
                "each step's segment id under that name"
            )
        for key in keys:
            value = step[key]
            dtype = self._dtypes.get(key, value.dtype)
            check_storable(self._dtype_key(key), dtype, value.dtype)
            self._item_dtypes[key] = value.dtype
            self._data[key] = torch.zeros(self._slots_shape + tuple(value.shape), dtype=dtype)
        self._item_dtypes[SEGMENT] = torch.int64
        self._data[SEGMENT] = torch.full(self._slots_shape, -1, dtype=torch.int64)
