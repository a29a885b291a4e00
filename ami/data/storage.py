"""Preallocated tensor storage for buffers: one tensor per key, indexed by slot."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from ami.data.step import Step


def parse_dtypes(name: str, dtypes: Mapping[str, str] | None) -> dict[str, torch.dtype]:
    """Turn ``{"observation": "float16"}`` into torch dtypes, naming a bad entry clearly."""
    parsed: dict[str, torch.dtype] = {}
    for key, dtype_name in (dtypes or {}).items():
        dtype = getattr(torch, str(dtype_name), None)
        if not isinstance(dtype, torch.dtype):
            raise ValueError(
                f"{name}: dtypes.{key}={dtype_name!r} is not a torch dtype "
                "(use e.g. float32, float16, bfloat16, uint8, int64)"
            )
        parsed[key] = dtype
    return parsed


class TensorStorage:
    """Slots of step data, allocated on the first write from that step's shapes.

    Allocation waits for data so that configs need not repeat observation sizes, and
    every later step is checked against the first: a wrong shape fails with the key,
    the shape it has and the one stored, instead of corrupting a batch much later.

    Args:
        name: Owner's name, for error messages.
        slots_shape: Leading shape of each tensor, e.g. ``(capacity,)``.
        keys: Keys to keep; None keeps every key of the first step.
        dtypes: Storage dtype per key (e.g. float16 to halve observation memory);
            samples come back in the step's original dtype.
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

    def stack(self, steps: Sequence[Step]) -> dict[str, torch.Tensor]:
        """Stack steps into one tensor per stored key, checking keys and shapes."""
        if not self._data:
            self._allocate(steps[0])
        stacked: dict[str, torch.Tensor] = {}
        for key, store in self._data.items():
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
            stacked[key] = torch.stack(values).to(store.dtype)
        return stacked

    def write(self, index: int | slice | torch.Tensor, values: Mapping[str, torch.Tensor]) -> None:
        """Write stacked values into slots ``index``."""
        for key, store in self._data.items():
            store[index] = values[key]

    def read(self, index: torch.Tensor | slice) -> dict[str, torch.Tensor]:
        """Gather slots, converted back to each key's original dtype."""
        return {key: store[index].to(self._item_dtypes[key]) for key, store in self._data.items()}

    def _allocate(self, step: Step) -> None:
        keys = self._keys if self._keys is not None else list(step)
        missing = [key for key in keys if key not in step]
        if missing:
            raise KeyError(
                f"{self._name}: configured keys {missing} are not in the steps, which "
                f"carry {sorted(step)}"
            )
        for key in keys:
            value = step[key]
            dtype = self._dtypes.get(key, value.dtype)
            self._item_dtypes[key] = value.dtype
            self._data[key] = torch.zeros(self._slots_shape + tuple(value.shape), dtype=dtype)
