"""A generation: the inference copies published together, and who is reading them.

Models trained together (an encoder and its decoder) must reach the agent together,
and an agent step must see one consistent set. So the gate never publishes a model on
its own: it publishes a new :class:`Generation` holding every model, the new copies of
the ones just trained and the unchanged copies of the others, under one version number.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from torch import nn

from ami.models.cuda_fences import Fence, fence
from ami.models.shared_tensors import tensor_storages


@dataclass(frozen=True)
class PublishedModel:
    """One model's inference copy as a generation holds it."""

    name: str
    module: nn.Module
    version: int
    """The generation in which this copy was published (changes only when it does)."""
    published_at: float
    """``time.monotonic()`` when it left training."""
    optimizer_steps: int
    """Optimizer steps its training copy had taken when it left training."""
    methods: frozenset[str]
    """What the inference side may call: ``forward`` and the declared inference methods."""
    storages: frozenset[int]
    """Addresses of its parameters' and buffers' memory: outputs that point there are
    copied before they leave the gate."""


class Generation:
    """An immutable set of published models, plus the count of snapshots reading it.

    Only the mutable fields (``readers``, ``reader_fences``) change, and only under the
    gate's lock. ``reader_fences`` is read without it once ``readers`` has dropped to 0
    for a retired generation: no snapshot can open on it again, so nothing writes it.
    """

    __slots__ = ("devices", "models", "reader_fences", "readers", "ready", "version")

    def __init__(self, version: int, models: Mapping[str, PublishedModel]) -> None:
        self.version = version
        self.models = dict(models)
        self.devices = frozenset(
            tensor.device
            for entry in self.models.values()
            for tensor in (*entry.module.parameters(), *entry.module.buffers())
            if tensor.device.type == "cuda"
        )
        self.ready: Fence | None = fence(self.devices)
        """On CUDA: how far the creating (training) thread's streams had got when it
        published these copies; a snapshot's streams wait for it before reading them."""
        self.readers = 0
        self.reader_fences: dict[int, Fence] = {}
        """On CUDA: per reading thread, the end of its last snapshot's kernels."""


def storages_of(module: nn.Module) -> frozenset[int]:
    """Memory addresses of every parameter and buffer of ``module``."""
    return frozenset(address for _, address in tensor_storages(module))
