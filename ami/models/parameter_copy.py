"""Copy parameters without getting in the inference thread's way.

Two things slow the agent's step while a sync copies a large model behind it:

- cores: a plain ``copy_`` of a large CPU tensor runs on every intra-op thread torch
  has, fighting the inference thread's forward pass for the same cores. Copies here
  go in pieces below torch's parallel grain size, so they stay on the calling thread;
- memory bandwidth: a forward pass of a large model streams its weights from memory,
  and so does the copy. So the copy is cut into blocks, and before each block it
  waits (a bounded while) for a moment when no forward pass is running.

``benchmarks/sync.py`` measures the result, and the floor that no copy can avoid.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import torch

GRAIN = 1 << 15
"""Elements per copy call: torch's grain size, below which a CPU copy runs on one thread."""

BLOCK = 1 << 20
"""Elements between two waits for a quiet moment (4 MB of float32, ~0.3 ms to copy)."""


def blocks(
    targets: Sequence[torch.Tensor], sources: Sequence[torch.Tensor], size: int = BLOCK
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """``(target, source)`` pieces of at most ``size`` elements, covering every pair."""
    for target, source in zip(targets, sources, strict=True):
        if target.numel() <= size or not target.is_contiguous() or target.device.type != "cpu":
            yield target, source
            continue
        flat_target, flat_source = target.view(-1), source.reshape(-1)
        for start in range(0, flat_target.numel(), size):
            yield flat_target[start : start + size], flat_source[start : start + size]


def copy_serially(
    targets: Sequence[torch.Tensor],
    sources: Sequence[torch.Tensor],
    before_block: Callable[[], None] | None = None,
) -> None:
    """``target.copy_(source)`` for each pair, on this thread only.

    Args:
        targets: Tensors written.
        sources: Tensors read, same shapes.
        before_block: Called before each block (e.g. to wait for a quiet moment).
    """
    with torch.no_grad():
        for target, source in blocks(targets, sources):
            if before_block is not None:
                before_block()
            if target.device.type != "cpu" or target.numel() <= GRAIN:
                target.copy_(source)
                continue
            for start in range(0, target.numel(), GRAIN):
                target[start : start + GRAIN].copy_(source[start : start + GRAIN])
