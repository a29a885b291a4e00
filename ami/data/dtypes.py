"""Storage dtypes for buffers: which ones exist, and how values go in and come out exactly.

A buffer may store a key in a smaller dtype than the steps carry it, to save memory
(``dtypes: {observation: float16}``). Every combination either round-trips as the user
expects or is refused with the key named:

- floats into a float dtype: cast (float16 keeps ~3 decimal digits);
- floats into ``uint8``: values in ``[0, 1]`` (the observation contract) are stored as
  ``round(255 * x)`` and come back divided by 255, a quarter of float32's memory;
  a value outside ``[0, 1]`` is an error, not a silent wrap-around;
- integers (and bools) into an integer dtype: cast, after checking that every value
  fits;
- anything else (floats into ``int16``, integers into ``float16``...) is refused.
"""

from __future__ import annotations

import torch

STORAGE_DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
    "float64": torch.float64,
    "uint8": torch.uint8,
    "int8": torch.int8,
    "int16": torch.int16,
    "int32": torch.int32,
    "int64": torch.int64,
    "bool": torch.bool,
}

_QUANTIZED = 255.0


def storage_dtype(key: str, name: object) -> torch.dtype:
    """The dtype called ``name``, or a ValueError naming ``key`` and the accepted names."""
    dtype = STORAGE_DTYPES.get(str(name)) if isinstance(name, str) else None
    if dtype is None:
        raise ValueError(
            f"{key}={name!r} is not a storage dtype; use one of {', '.join(STORAGE_DTYPES)}"
        )
    return dtype


def check_storable(key: str, stored: torch.dtype, item: torch.dtype) -> None:
    """Raise unless values of dtype ``item`` round-trip through ``stored`` storage."""
    if stored == item:
        return
    if item.is_floating_point and (stored.is_floating_point or stored == torch.uint8):
        return
    if not item.is_floating_point and not item.is_complex and not stored.is_floating_point:
        return
    if item.is_floating_point:
        hint = "floats are stored as a float dtype, or as uint8 when they lie in [0, 1]"
    elif item.is_complex:
        hint = "complex values are stored as their own dtype only"
    else:
        hint = f"{item} values are stored as an integer dtype that holds them"
    raise ValueError(f"{key}={_name(stored)} cannot store this key's {item} values: {hint}")


def to_storage(key: str, values: torch.Tensor, stored: torch.dtype) -> torch.Tensor:
    """``values`` converted for storage; raises (naming ``key``) if they do not fit."""
    if values.dtype == stored or not values.numel():
        return values.to(stored)
    if values.dtype.is_floating_point and stored == torch.uint8:
        low, high = float(values.min()), float(values.max())
        if not (low >= 0.0 and high <= 1.0) or not bool(torch.isfinite(values).all()):
            raise ValueError(
                f"{key}=uint8 stores values in [0, 1] as 0..255, but this step holds values "
                f"in [{low:g}, {high:g}] (or NaN); store it as float16 instead"
            )
        return values.mul(_QUANTIZED).round_().to(stored)
    if values.dtype.is_floating_point and stored.is_floating_point:
        largest = torch.finfo(stored).max
        finite = values[torch.isfinite(values)]
        if finite.numel() and float(finite.abs().max()) > largest:
            raise ValueError(
                f"{key}={_name(stored)} holds values up to {largest:g}, but this step holds "
                f"{float(finite.abs().max()):g}, which would be stored as infinity; choose a "
                "wider float dtype"
            )
    if not values.dtype.is_floating_point and not stored.is_floating_point and values.numel():
        low, high = int(values.min()), int(values.max())
        limits = (0, 1) if stored == torch.bool else _integer_range(stored)
        if low < limits[0] or high > limits[1]:
            raise ValueError(
                f"{key}={_name(stored)} cannot hold this step's values in [{low}, {high}]; "
                "choose a wider integer dtype"
            )
    return values.to(stored)


def from_storage(values: torch.Tensor, item: torch.dtype) -> torch.Tensor:
    """Stored ``values`` back in the steps' own dtype (undoing uint8 quantization)."""
    if values.dtype == item:
        return values
    if values.dtype == torch.uint8 and item.is_floating_point:
        return values.to(item).div_(_QUANTIZED)
    return values.to(item)


def _integer_range(dtype: torch.dtype) -> tuple[int, int]:
    info = torch.iinfo(dtype)
    return info.min, info.max


def _name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")
