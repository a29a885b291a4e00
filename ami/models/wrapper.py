"""A model shared by two threads: a training copy that learns, an inference copy that acts.

The training thread writes the :class:`ModelWrapper`; the inference thread holds its
:class:`InferenceModel`, a read-only handle that runs the inference copy in eval mode
under ``torch.inference_mode``. :meth:`ModelWrapper.sync` publishes training progress by
switching the two references under a lock held only for the switch, then copies the
parameters back into the new training copy on the training thread. The inference
thread never waits for a copy, whatever the model's size; the training thread waits,
at most, for a forward pass already running on the copy it takes back.

Constraint (from the design): a model holds no state between calls. The switch hands
the inference thread a different module object, so anything a module remembered from
its last call (a recurrent hidden state, a cache) would silently change. Recurrent
state belongs to the agent and is passed in and out explicitly.
"""

from __future__ import annotations

import copy
import threading
from typing import Any

import torch
from torch import nn
from torch.optim import Optimizer
from typing_extensions import override

from ami.models.optimizer_binding import rebind_optimizer
from ami.models.parameter_copy import copy_serially
from ami.sharing import Owned, ReadOnlyHandle, writes


def _raw(optimizer: Optimizer) -> Optimizer:
    """The optimizer inside Fabric's wrapper, or the optimizer itself."""
    inner = getattr(optimizer, "optimizer", None)
    return inner if isinstance(inner, Optimizer) else optimizer


class ModelWrapper(Owned):
    """The two copies of one model, and the switch between them.

    Args:
        name: The model's name in configs, logs and errors.
        module: The model. It becomes the training copy; a deep copy becomes the
            inference copy.
        copy_patience: Seconds a sync waits, before each 4 MB block of its copy, for
            the inference thread to be between forward passes.
    """

    def __init__(self, name: str, module: nn.Module, copy_patience: float = 0.05) -> None:
        super().__init__(f"models.{name}")
        self.name = name
        self._training = module.train()
        inference = copy.deepcopy(module)
        self._trainable = [param.requires_grad for param in module.parameters()]
        self._prepare_for_inference(inference)
        self._switch = threading.Condition(threading.Lock())
        self._published = _Published(inference, 0)
        self._optimizers: list[Optimizer] = []
        self.inference = InferenceModel(self)
        self.copy_patience = copy_patience
        self.syncs = 0
        """How many times :meth:`sync` published the training copy."""

    @property
    def training_module(self) -> nn.Module:
        """The writable copy; only the training thread may touch it."""
        self.check_writer("training_module")
        return self._training

    @property
    def parameter_count(self) -> int:
        """Number of parameters in one copy."""
        return sum(param.numel() for param in self._training.parameters())

    @writes
    def to(self, device: torch.device | str) -> None:
        """Move both copies; waits for running forward passes, blocks new ones meanwhile.

        Meant for set-up, before the threads start; safe later too, but slow.
        """
        with self._switch:
            self._switch.wait_for(lambda: self._published.readers == 0)
            self._training.to(device)
            self._published.module.to(device)

    @writes
    def attach_optimizer(self, optimizer: Optimizer) -> None:
        """Let ``optimizer`` follow the training copy across syncs.

        The optimizer may be Fabric's wrapper; the wrapped optimizer is rebound.
        """
        self._optimizers.append(_raw(optimizer))

    @writes
    def sync(self) -> None:
        """Publish the training copy to the inference thread and keep training on.

        1. The training copy is put into inference mode (eval, no grad) while it is
           still private to this thread.
        2. Under the lock, the published reference switches: one assignment.
        3. Forward passes that started on the former inference copy finish (new ones
           already use the new copy); then it becomes the training copy: train mode,
           its parameters take over the optimizers' slots and state, and receive the
           published values, so training continues exactly where it was. The copy
           runs on this thread's core, block by block, preferably while the inference
           thread is between forward passes (see :mod:`ami.models.parameter_copy`).
        """
        published = self._training
        self._prepare_for_inference(published)
        with self._switch:
            retired = self._published
            self._published = _Published(published, self.syncs + 1)
            # Releases the lock while waiting: new calls already take the new copy.
            self._switch.wait_for(lambda: retired.readers == 0)
        self._training = retired.module
        self._prepare_for_training(retired.module)
        mapping = dict(zip(published.parameters(), retired.module.parameters(), strict=True))
        for optimizer in self._optimizers:
            rebind_optimizer(optimizer, mapping)
        copy_serially(
            [*retired.module.parameters(), *retired.module.buffers()],
            [*published.parameters(), *published.buffers()],
            before_block=self._wait_for_quiet,
        )
        self.syncs += 1

    def _wait_for_quiet(self) -> None:
        """Wait until no forward pass runs on the published copy, at most ``copy_patience``.

        Copying while the inference thread computes slows its step (shared cores and
        memory bus); between its calls, copying costs it nothing. A busy agent still
        gets its copy: after ``copy_patience`` the block is copied anyway.
        """
        with self._switch:
            self._switch.wait_for(lambda: self._published.readers == 0, self.copy_patience)

    def _prepare_for_training(self, module: nn.Module) -> None:
        module.train()
        for param, trainable in zip(module.parameters(), self._trainable, strict=True):
            param.requires_grad_(trainable)

    @staticmethod
    def _prepare_for_inference(module: nn.Module) -> None:
        module.eval()
        module.requires_grad_(False)


class _Published:
    """The inference copy, its version and the count of forward passes running on it."""

    __slots__ = ("module", "readers", "version")

    def __init__(self, module: nn.Module, version: int) -> None:
        self.module = module
        self.version = version
        self.readers = 0


class InferenceModel(ReadOnlyHandle):
    """The inference thread's read-only handle on a shared model.

    Asking it for a writing method of the wrapper (``sync``, ``to``...) raises
    :class:`~ami.sharing.ReadOnlyError`. A call takes the currently published copy and
    marks it in use, both under the switch lock (microseconds), then runs the forward
    pass outside the lock under ``torch.inference_mode``. A sync that retires this copy
    waits for the mark to clear before writing into it, so a forward pass never sees a
    half-copied model.
    """

    def __init__(self, wrapper: ModelWrapper) -> None:
        self._wrapper = wrapper

    @override
    def _read_only_target(self) -> ModelWrapper:
        return self._wrapper

    @property
    def name(self) -> str:
        """The model's name."""
        return self._wrapper.name

    @property
    def version(self) -> int:
        """Syncs published so far: changes when the parameters the next call uses change."""
        return self._wrapper._published.version

    @property
    def device(self) -> torch.device:
        """Where inputs must be placed."""
        for param in self._wrapper._published.module.parameters():
            return param.device
        return torch.device("cpu")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Run the inference copy's forward pass."""
        return self.call("__call__", *args, **kwargs)

    def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """Run another method of the inference copy (e.g. ``decode``) the same way."""
        switch = self._wrapper._switch
        with switch:
            published = self._wrapper._published
            published.readers += 1
        try:
            with torch.inference_mode():
                return getattr(published.module, method)(*args, **kwargs)
        finally:
            with switch:
                published.readers -= 1
                if published.readers == 0:
                    switch.notify_all()
