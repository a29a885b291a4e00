"""The state protocol: what every stateful part of a run gives to a checkpoint and takes back.

A part that changes as the run goes (a model, an optimizer, a buffer, the agent's memory,
the world's random generator) implements ``state_dict()`` / ``load_state_dict()``, as
torch modules do. States are nested dicts keyed by name, never by position, holding
tensors and plain values (ints, floats, strings, bools, None, lists, tuples), so that a
checkpoint can store them without pickling anything. A resumed run is exact only if
every such part is in the checkpoint; :func:`global_rng_state` covers the generators
that no part owns (torch's, numpy's and Python's global ones).

The part's owning thread calls both methods: the state it returns may reference live
tensors, so :func:`snapshot` clones them before another thread may read them.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch


@runtime_checkable
class Stateful(Protocol):
    """A part whose state a checkpoint keeps."""

    def state_dict(self) -> dict[str, Any]:
        """The part's state: nested dicts of tensors and plain values."""
        ...

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore a state from :meth:`state_dict` (of a part built from the same config)."""
        ...


def snapshot(state: Any) -> Any:
    """``state`` with every tensor copied to the CPU: a value nobody else writes.

    The owning thread takes it at a safe point and may hand it to another thread (the
    main thread writes checkpoints) while it goes on changing the originals.
    """
    if isinstance(state, torch.Tensor):
        return state.detach().to("cpu", copy=True)
    if isinstance(state, Mapping):
        return {key: snapshot(value) for key, value in state.items()}
    if isinstance(state, tuple):
        return tuple(snapshot(value) for value in state)
    if isinstance(state, list):
        return [snapshot(value) for value in state]
    return state


def generator_state(generator: np.random.Generator) -> dict[str, Any]:
    """A numpy generator's state as plain values (its bit generator's own dict)."""
    return dict(generator.bit_generator.state)


def load_generator_state(generator: np.random.Generator, state: Mapping[str, Any]) -> None:
    """Restore :func:`generator_state`."""
    generator.bit_generator.state = dict(state)


def global_rng_state() -> dict[str, Any]:
    """The process-wide generators: torch's (CPU, and each CUDA device's), numpy's, Python's."""
    kind, keys, position, has_gauss, cached = np.random.get_state(legacy=True)
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "kind": str(kind),
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "position": int(position),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "python": random.getstate(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():  # type: ignore[no-untyped-call]
        state["cuda"] = list(torch.cuda.get_rng_state_all())
    return state


def set_global_rng_state(state: Mapping[str, Any]) -> None:
    """Restore :func:`global_rng_state`."""
    torch.set_rng_state(state["torch"])
    numpy = state["numpy"]
    np.random.set_state(
        (
            numpy["kind"],
            numpy["keys"].numpy().astype(np.uint32),
            numpy["position"],
            numpy["has_gauss"],
            numpy["cached_gaussian"],
        )
    )
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
