"""Checks of numbers that come from configs, with errors that name the key.

Hydra types the primary config's own keys; values inside config groups reach the
constructors untyped, so constructors check them here before using them.
"""

from __future__ import annotations


def positive_number(key: str, value: object) -> float:
    """``value`` as a float > 0, or a ValueError naming ``key``."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ValueError(f"{key}={value!r}: expected a number > 0")
    return float(value)


def whole_number(key: str, value: object, minimum: int = 1) -> int:
    """``value`` as an int >= ``minimum``, or a ValueError naming ``key``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{key}={value!r}: expected a whole number >= {minimum}")
    return value
