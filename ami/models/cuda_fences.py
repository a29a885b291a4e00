"""Ordering GPU work between the two threads that share a model.

On the CPU, a call that has returned has finished. On CUDA it has only been queued: a
forward pass the agent "finished" may still be reading a copy's weights on the GPU
when the training thread starts overwriting them, and a freshly published copy may
still be receiving its last optimizer step. A :class:`Fence` is one CUDA event per
device, recorded on the current stream of the thread that did the work; the other
thread makes its own stream wait for it before touching the same memory. The wait is
queued on the GPU, so neither thread blocks on the CPU.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch


class Fence:
    """The point, on each device's current stream, that this thread's work has reached."""

    __slots__ = ("_events",)

    def __init__(self, devices: Iterable[torch.device]) -> None:
        self._events: list[tuple[torch.device, torch.cuda.Event]] = []
        for device in devices:
            event = torch.cuda.Event()  # type: ignore[no-untyped-call]
            event.record(torch.cuda.current_stream(device))
            self._events.append((device, event))

    def hold_back_current_streams(self) -> None:
        """Make this thread's current streams wait until the fenced work is done."""
        for device, event in self._events:
            torch.cuda.current_stream(device).wait_event(event)


def fence(devices: frozenset[torch.device]) -> Fence | None:
    """A fence on ``devices``, or None when there is no CUDA device to order."""
    return Fence(devices) if devices else None
