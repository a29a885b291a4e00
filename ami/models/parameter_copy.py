"""Copy parameters on one core, so a sync leaves the other cores to the inference thread.

A plain ``copy_`` of a large tensor runs on every intra-op thread torch has; while the
inference thread runs a forward pass on the same cores, both then fight for them and
the agent's step slows down. Copying in chunks below torch's parallel grain size keeps
the copy on the calling thread, which costs the training thread a little more time and
the inference thread much less (``benchmarks/sync.py`` measures both).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

CHUNK = 1 << 15
"""Elements per copy: torch's grain size, below which a CPU copy runs on one thread."""


def copy_serially(targets: Sequence[torch.Tensor], sources: Sequence[torch.Tensor]) -> None:
    """``target.copy_(source)`` for each pair; large CPU tensors in one-thread chunks."""
    with torch.no_grad():
        for target, source in zip(targets, sources, strict=True):
            if target.numel() <= CHUNK or target.device.type != "cpu" or not target.is_contiguous():
                target.copy_(source)
                continue
            flat_target, flat_source = target.view(-1), source.reshape(-1)
            for start in range(0, flat_target.numel(), CHUNK):
                flat_target[start : start + CHUNK].copy_(flat_source[start : start + CHUNK])
