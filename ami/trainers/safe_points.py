"""Safe points inside an optimizer step, so that a pause takes effect mid-step.

A pause is acknowledged once both threads have parked. Between optimizer steps is the
obvious place for the training thread, but a step of a large model on a CPU takes a
second or more (a 16-step dynamics unroll at ``model.size=large``: 0.8 s forward, 0.5 s
backward on two cores), far beyond the 100 ms a researcher expects a pause to take.

So during a long step every layer the trainer uses (each module holding parameters of
its own: a convolution, a linear map, a recurrent cell, a norm) gets two short-lived
hooks: one before each forward call, and one on each output's gradient, which autograd
calls when the backward pass reaches that layer. Each is a safe point: a heartbeat, a park while
paused, and :class:`StepInterrupted` after a shutdown. Hooks exist only during the step
and only on the training copies: the agent's copies never carry them, and a step short
enough not to need them (:data:`INNER_SAFE_POINTS_AFTER`) does not pay for them.

Parking mid-step is safe because nothing a checkpoint holds has changed yet: parameters
and optimizer state change only in ``optimizer.step()``, after the last safe point. What
has moved is the random generators the step drew its batch and noise from; a
:class:`StepStart` remembers them, so that a checkpoint taken while parked mid-step, or
after a shutdown interrupted one, describes the moment the step began. A resumed run
then redoes that step from the same batch and noise: the resume stays exact. (This
requires that a forward pass changes no state of its own; the nets use GroupNorm, never
BatchNorm, whose running statistics would change during the forward pass.)

Hooks fire on the thread that runs the module. Only that step's own thread parks: on a
GPU, autograd runs the backward pass on a device thread of its own, which never parks
(there, a step is short anyway).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Final

import torch
from torch import nn

from ami.state import global_rng_state, set_global_rng_state
from ami.system.control import ThreadControl

INNER_SAFE_POINTS_AFTER: Final = 0.05
"""Seconds: a trainer whose previous optimizer step took at least this long gets safe
points inside the next one. A shorter step delays a pause by less than half the 100 ms
a pause may take, and would pay the hooks (a few percent of a step) for nothing."""


class StepInterrupted(Exception):
    """A shutdown arrived at a safe point inside an optimizer step; the step is abandoned."""


class StepStart:
    """The random generators one step draws from, as they were when it began.

    Args:
        generators: Generators other than the process-wide ones (torch's, numpy's,
            Python's, always included) that the step draws from: the buffer's sampler,
            and any the trainer draws noise from.
    """

    def __init__(self, generators: Sequence[torch.Generator]) -> None:
        self._generators = list(generators)
        self._global = global_rng_state()
        self._states = [generator.get_state() for generator in self._generators]

    def restore(self) -> None:
        """Put every generator back where it was (after an abandoned step)."""
        set_global_rng_state(self._global)
        for generator, state in zip(self._generators, self._states, strict=True):
            generator.set_state(state)

    @contextmanager
    def restored(self) -> Iterator[None]:
        """Within: the generators as at the step's start; after: as they are now."""
        now = StepStart(self._generators)
        self.restore()
        try:
            yield
        finally:
            now.restore()


@contextmanager
def safe_points_in(control: ThreadControl, modules: Iterable[nn.Module]) -> Iterator[None]:
    """Within: every forward call and backward pass through ``modules`` is a safe point.

    Raises:
        StepInterrupted: A shutdown was requested; raised from the safe point it met.
    """
    owner = threading.get_ident()

    def safe_point() -> None:
        if threading.get_ident() == owner and not control.manage_loop():
            raise StepInterrupted

    def before_forward(module: nn.Module, args: Any) -> None:
        safe_point()

    def on_gradient(gradient: torch.Tensor) -> None:
        safe_point()  # returns None: the gradient stays as it is

    def after_forward(module: nn.Module, args: Any, output: Any) -> None:
        for tensor in _tensors(output):
            if tensor.requires_grad:
                tensor.register_hook(on_gradient)  # type: ignore[no-untyped-call]

    handles = []
    try:
        for module in modules:
            for part in module.modules():
                if next(part.parameters(recurse=False), None) is None:
                    continue  # containers and activations: their parts are safe points
                handles.append(part.register_forward_pre_hook(before_forward))
                handles.append(part.register_forward_hook(after_forward))
        yield
    finally:
        for handle in handles:
            handle.remove()


def _tensors(output: Any) -> list[torch.Tensor]:
    """The tensors a module returned: itself, or the members of a tuple, list or dict."""
    if isinstance(output, torch.Tensor):
        return [output]
    if isinstance(output, tuple | list):
        return [item for item in output if isinstance(item, torch.Tensor)]
    if isinstance(output, dict):
        return [item for item in output.values() if isinstance(item, torch.Tensor)]
    return []
