"""Copy parameters without getting in the inference thread's way.

Three things slow the agent's step while a publication copies a large model behind it:

- cores: a plain ``copy_`` of a large CPU tensor runs on every intra-op thread torch
  has, fighting the inference thread's forward pass for the same cores. Copies here
  run with this thread's torch thread count set to one;
- the GIL: the inference thread needs it between the operations of its forward pass.
  Each block is copied by one ``copy_`` call, which releases the GIL for the whole
  block. (Copying in many small pieces from a Python loop re-takes the GIL between
  pieces, and the inference thread then waited for it: 2.5% of its 16 ms calls ran
  1 ms late at 100M parameters, against 0.7% without publications.)
- memory bandwidth: a forward pass of a large model streams its weights from memory,
  and so does the copy. So the copy is cut into blocks, and before each block it
  waits (a bounded while) for a moment when no forward pass is running.

``benchmarks/sync.py`` measures the result, and the floor that no copy can avoid.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import torch

BLOCK = 1 << 20
"""Elements between two waits for a quiet moment (4 MB of float32, ~0.5 ms to copy)."""


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


@contextmanager
def one_torch_thread() -> Iterator[None]:
    """Run this thread's torch operations on one CPU thread, then restore its count.

    The count is per thread (see :class:`ami.threads.BackgroundThread`), so the other
    threads keep theirs; only a thread that runs its first torch operation meanwhile
    would start with one.
    """
    previous = torch.get_num_threads()
    if previous == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def copy_serially(
    targets: Sequence[torch.Tensor],
    sources: Sequence[torch.Tensor],
    before_block: Callable[[], None] | None = None,
) -> None:
    """``target.copy_(source)`` for each pair, on this thread only, block by block.

    Args:
        targets: Tensors written.
        sources: Tensors read, same shapes.
        before_block: Called before each block (e.g. to wait for a quiet moment).
    """
    with torch.no_grad(), one_torch_thread():
        for target, source in blocks(targets, sources):
            if before_block is not None:
                before_block()
            target.copy_(source)
