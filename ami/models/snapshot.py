"""The inference side of the gate: one pinned generation, and read-only model handles.

An agent opens a :class:`ModelSnapshot` for a whole step; every model it calls in that
step comes from the same generation, whatever the training thread publishes meanwhile.
A :class:`InferenceModel` runs only what its model declared for inference, under
``torch.inference_mode``, and never hands out a tensor that shares memory with a
published parameter: the copy it came from becomes the training copy at the next
switch, and the optimizer would change the agent's tensor under its feet.

The handles guard against mistakes, not malice: Python code can always reach a private
attribute (``handle._entry.module``); code that does is on its own.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Iterator, Mapping
from typing import Any

import torch
from torch import nn
from typing_extensions import override

from ami.models.generation import Generation, PublishedModel
from ami.sharing import ReadOnlyError


class ModelSnapshot(Mapping[str, "InferenceModel"]):
    """The models of one generation, as the inference thread may use them.

    Valid only inside its ``with models.snapshot()`` block; a handle kept beyond it
    refuses to run.
    """

    def __init__(self, generation: Generation, writer: str) -> None:
        self._generation = generation
        self._writer = writer
        self._handles: dict[str, InferenceModel] = {}
        self._used: tuple[str, ...] = ()
        self._open = True

    @property
    def version(self) -> int:
        """The generation's number: it changes with every publication."""
        return self._generation.version

    @property
    def used(self) -> tuple[str, ...]:
        """Names of the models looked up in this snapshot (so far, while it is open)."""
        return tuple(self._handles) if self._open else self._used

    @override
    def __getitem__(self, name: str) -> InferenceModel:
        handle = self._handles.get(name)
        if handle is None:
            entry = self._generation.models.get(name)
            if entry is None:
                raise KeyError(f"no model named {name!r}; the models are {sorted(self)}")
            handle = self._handles[name] = InferenceModel(entry, self)
        return handle

    @override
    def __iter__(self) -> Iterator[str]:
        return iter(self._generation.models)

    @override
    def __len__(self) -> int:
        return len(self._generation.models)

    def close(self) -> None:
        """End the snapshot: its handles stop working.

        Dropping them also breaks the snapshot <-> handle reference cycle, so a step's
        snapshot is freed at once instead of waiting for the cyclic garbage collector,
        whose full passes pause every thread.
        """
        self._used = tuple(self._handles)
        self._handles.clear()
        self._open = False

    def check_open(self, name: str) -> None:
        """Raise unless the snapshot is still open."""
        if not self._open:
            raise ReadOnlyError(
                f"models.{name}: this handle belongs to a closed snapshot; open a new one "
                "with `with models.snapshot() as m:` for each step"
            )


class InferenceModel:
    """A read-only handle on one published model inside a snapshot.

    ``handle(x)`` runs ``forward``; ``handle.initial_hidden(1)`` runs a method declared
    with :func:`~ami.models.inference_method`. Anything else raises
    :class:`~ami.sharing.ReadOnlyError` naming the model and the thread that writes it.
    """

    __slots__ = ("_entry", "_snapshot")

    def __init__(self, entry: PublishedModel, snapshot: ModelSnapshot) -> None:
        self._entry = entry
        self._snapshot = snapshot

    @property
    def name(self) -> str:
        """The model's name."""
        return self._entry.name

    @property
    def version(self) -> int:
        """The generation that published this copy: changes when its parameters do."""
        return self._entry.version

    @property
    def device(self) -> torch.device:
        """Where inputs must be placed (its first parameter's, or buffer's, device)."""
        module = self._entry.module
        for tensor in (*module.parameters(), *module.buffers()):
            return tensor.device
        return torch.device("cpu")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Run the inference copy's forward pass."""
        return self._run(self._entry.module, args, kwargs)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):  # copy, pickle and friends probe for these
            raise AttributeError(name)
        entry = self._entry
        if name not in entry.methods:
            declared = sorted(entry.methods - {"forward"})
            raise ReadOnlyError(
                f"models.{entry.name}: {name!r} is not an inference method of "
                f"{type(entry.module).__name__}; the inference thread may call the model "
                f"(forward) and its declared methods {declared}, and thread "
                f"{self._snapshot._writer!r} writes it. Declare a read-only method with "
                "@ami.models.inference_method."
            )
        method = getattr(entry.module, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            return self._run(method, args, kwargs)

        return call

    def _run(self, function: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Any:
        self._snapshot.check_open(self._entry.name)
        with torch.inference_mode():
            output = function(*args, **kwargs)
        return _detached(output, self._entry)


def _detached(value: Any, entry: PublishedModel) -> Any:
    """``value`` with every tensor that shares a published tensor's memory copied.

    Containers come back as they went in (the same object when nothing inside needed a
    copy; else the same type: a namedtuple, a ``torch.return_types`` result, a
    dataclass with every field kept).
    """
    if isinstance(value, torch.Tensor):
        if value.numel() and value.untyped_storage().data_ptr() in entry.storages:
            return value.detach().clone()
        return value
    if value is None or isinstance(value, int | float | str | bool):
        return value
    if isinstance(value, tuple | list):
        items = [_detached(item, entry) for item in value]
        if all(new is old for new, old in zip(items, value, strict=True)):
            return value
        if isinstance(value, list):
            return items
        if hasattr(value, "_fields"):  # a namedtuple
            return type(value)(*items)
        if hasattr(type(value), "n_fields"):  # a structseq: torch.return_types.*
            return type(value)(items)
        return tuple(items)
    if isinstance(value, dict):
        copied = {key: _detached(item, entry) for key, item in value.items()}
        changed = any(copied[key] is not item for key, item in value.items())
        return copied if changed else value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
        copied = {name: _detached(item, entry) for name, item in fields.items()}
        if all(copied[name] is item for name, item in fields.items()):
            return value
        result = copy.copy(value)
        for name, item in copied.items():
            object.__setattr__(result, name, item)  # frozen dataclasses too
        return result
    kind = "a module" if isinstance(value, nn.Module) else f"a {type(value).__name__}"
    raise ReadOnlyError(
        f"models.{entry.name}: an inference call returned {kind}, which could reach into "
        "the published copy; return tensors (or tuples, lists, dicts, dataclasses of them)"
    )
