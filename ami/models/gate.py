"""The model gate: the one way models move between the training and the inference thread.

The training thread writes the :class:`ModelGate`. It holds every model twice: a
training copy that learns, and an inference copy that a generation publishes. The
inference thread gets :attr:`ModelGate.inference`, an :class:`InferenceModels` handle
whose only way in is a snapshot::

    with models.snapshot() as m:        # pins one generation for the whole step
        latent = m["encoder"](frame)
        hidden = m["dynamics"].initial_hidden(1)

:meth:`ModelGate.publish` switches references, as the design asks: the trained copies
go out in a new generation under a lock held for one assignment; once the snapshots
reading the previous generation have closed, its copies of those models become the
training copies, the optimizers follow them, and the published values are copied into
them on the training thread (:mod:`ami.models.parameter_copy`). The inference thread
never waits for a copy.

Constraint (from the design): a model holds no state between calls. Each switch hands
the inference thread other module objects, so anything a module remembered from its
last call would silently change. Recurrent state belongs to the agent.
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import nn
from typing_extensions import override

from ami.models.cuda_fences import fence
from ami.models.generation import Generation, PublishedModel, storages_of
from ami.models.inference_methods import inference_methods
from ami.models.optimizer_binding import BoundOptimizer
from ami.models.parameter_copy import copy_serially
from ami.models.shared_tensors import refuse_shared_tensors
from ami.models.snapshot import ModelSnapshot
from ami.sharing import Owned, ReadOnlyHandle, writes


class ModelGate(Owned):
    """Every model of an experiment, its two copies, and their publication.

    Args:
        modules: The models by name. Each becomes its own training copy; a deep copy
            becomes its first published inference copy (generation 0).
        copy_patience: Seconds a publication waits, before each block of its copy (a
            tensor, or 1M elements of a larger one), for the inference thread to be
            between snapshots.

    Raises:
        ValueError: Two models share a parameter or buffer (see
            :mod:`ami.models.shared_tensors`).
    """

    def __init__(self, modules: Mapping[str, nn.Module], copy_patience: float = 0.05) -> None:
        super().__init__("models")
        refuse_shared_tensors(modules)
        self.copy_patience = copy_patience
        self._training = {name: module.train() for name, module in modules.items()}
        self._steps = dict.fromkeys(self._training, 0)
        self._optimizers: list[BoundOptimizer] = []
        self._switch = threading.Condition(threading.Lock())
        now = time.monotonic()
        self._current = Generation(
            0,
            {
                name: self._entry(name, _for_inference(copy.deepcopy(module)), 0, now)
                for name, module in self._training.items()
            },
        )
        self.inference = InferenceModels(self)
        """The read-only handle for the inference thread."""
        self.heartbeat: Callable[[], None] = lambda: None
        """Called while a publication waits and copies: a long copy is work, not a hang
        (the training thread sets it to its heartbeat)."""

    @property
    def names(self) -> tuple[str, ...]:
        """The models' names, in configuration order."""
        return tuple(self._training)

    @property
    def version(self) -> int:
        """The number of the generation published last."""
        return self._current.version

    def training_module(self, name: str) -> nn.Module:
        """The writable copy of model ``name``; only the training thread may touch it."""
        self.check_writer(f"training_module({name!r})")
        return self._training[self._known(name)]

    def parameter_count(self, name: str) -> int:
        """Number of parameters in one copy of model ``name``."""
        return sum(param.numel() for param in self._training[self._known(name)].parameters())

    def optimizer_steps(self, name: str) -> int:
        """Optimizer steps taken on model ``name``'s training copies so far."""
        return self._steps[self._known(name)]

    @writes
    def to(self, device: torch.device | str) -> None:
        """Move both copies of every model; meant for set-up, before the threads start.

        Waits for open snapshots to close and holds new ones back meanwhile.
        """
        with self._switch:
            self._switch.wait_for(lambda: self._current.readers == 0)
            for module in self._training.values():
                module.to(device)
            for entry in self._current.models.values():
                entry.module.to(device)
            current = self._current
            self._current = Generation(
                current.version,
                {
                    name: self._entry(name, entry.module, entry.version, entry.published_at)
                    for name, entry in current.models.items()
                },
            )

    @writes
    def attach_optimizer(self, optimizer: BoundOptimizer) -> None:
        """Keep ``optimizer`` on the training copies across switches, whichever it steps."""
        self._optimizers.append(optimizer)

    @writes
    def count_steps(self, names: Sequence[str]) -> None:
        """Record one optimizer step on the training copies of ``names`` (for model age)."""
        for name in names:
            self._steps[name] += 1

    @writes
    def publish(self, names: Sequence[str] | None = None) -> int:
        """Publish the training copies of ``names`` (None: every model) as one generation.

        1. Each copy is put into inference mode (eval, no grad) while it is still
           private to this thread; its ``requires_grad`` flags are read first, so the
           copy that trains next starts with the flags the trainer left.
        2. Under the lock, the new generation replaces the current one: one assignment.
        3. Once the snapshots of the old generation have closed (and, on CUDA, their
           kernels have run), its copies of these models become the training copies:
           train mode, the flags from step 1, the optimizers re-pointed at them, and
           the published values copied in, block by block, preferably between the
           inference thread's snapshots.

        Returns:
            The new generation's number.
        """
        chosen = list(self._training if names is None else dict.fromkeys(names))
        for name in chosen:
            self._known(name)
        if self.inference.holds_snapshot():
            raise RuntimeError(
                "models.publish: called inside a snapshot on the same thread; the switch "
                "would wait for that snapshot to close, forever"
            )
        current = self._current
        version = current.version + 1
        now = time.monotonic()
        flags: dict[str, list[bool]] = {}
        entries = dict(current.models)
        for name in chosen:
            module = self._training[name]
            flags[name] = [param.requires_grad for param in module.parameters()]
            entries[name] = self._entry(name, _for_inference(module), version, now)
        published = Generation(version, entries)
        with self._switch:
            retired = self._current
            self._current = published
            # Releases the lock while waiting: new snapshots already take the new generation.
            while not self._switch.wait_for(lambda: retired.readers == 0, 1.0):
                self.heartbeat()
        for reader in retired.reader_fences.values():
            reader.hold_back_current_streams()
        mapping: dict[torch.Tensor, nn.Parameter] = {}
        targets: list[torch.Tensor] = []
        sources: list[torch.Tensor] = []
        for name in chosen:
            source = entries[name].module
            target = retired.models[name].module
            target.train()
            for param, trainable in zip(target.parameters(), flags[name], strict=True):
                param.requires_grad_(trainable)
            mapping.update(zip(source.parameters(), target.parameters(), strict=True))
            targets += [*target.parameters(), *target.buffers()]
            sources += [*source.parameters(), *source.buffers()]
            self._training[name] = target
        for optimizer in self._optimizers:
            optimizer.follow(mapping)  # any optimizer holding one of these parameters
        copy_serially(targets, sources, before_block=self._wait_for_quiet)
        return version

    @writes
    def state_dict(self) -> dict[str, Any]:
        """Both copies of every model, their generation and their step counts.

        The training copy is stored only where it differs from the published one (it
        has trained since its last publication); otherwise it would double the file.
        """
        current = self._current
        models: dict[str, Any] = {}
        for name, entry in current.models.items():
            published = entry.module.state_dict()
            training = self._training[name].state_dict()
            same = published.keys() == training.keys() and all(
                torch.equal(published[key], training[key]) for key in published
            )
            models[name] = {
                "published": published,
                "training": None if same else training,
                "requires_grad": [p.requires_grad for p in self._training[name].parameters()],
                "version": entry.version,
                "published_steps": entry.optimizer_steps,
                "optimizer_steps": self._steps[name],
            }
        return {"version": current.version, "models": models}

    @writes
    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict` into both copies (before the threads start).

        Raises:
            KeyError: The state's models are not this gate's (names both sets).
        """
        saved = state["models"]
        if set(saved) != set(self._training):
            raise KeyError(
                f"the checkpoint has models {sorted(saved)}, this experiment has "
                f"{sorted(self._training)}"
            )
        with self._switch:
            self._switch.wait_for(lambda: self._current.readers == 0)
            entries = {}
            for name, entry in self._current.models.items():
                model = saved[name]
                entry.module.load_state_dict(model["published"])
                training = (
                    model["training"] if model["training"] is not None else model["published"]
                )
                module = self._training[name]
                module.load_state_dict(training)
                flags = model["requires_grad"]
                for param, flag in zip(module.parameters(), flags, strict=True):
                    param.requires_grad_(bool(flag))
                entries[name] = self._entry(
                    name,
                    entry.module,
                    int(model["version"]),
                    time.monotonic(),
                    optimizer_steps=int(model["published_steps"]),
                )
                self._steps[name] = int(model["optimizer_steps"])
            self._current = Generation(int(state["version"]), entries)

    def _entry(
        self,
        name: str,
        module: nn.Module,
        version: int,
        published_at: float,
        optimizer_steps: int | None = None,
    ) -> PublishedModel:
        return PublishedModel(
            name=name,
            module=module,
            version=version,
            published_at=published_at,
            optimizer_steps=self._steps[name] if optimizer_steps is None else optimizer_steps,
            methods=inference_methods(module),
            storages=storages_of(module),
        )

    def _wait_for_quiet(self) -> None:
        """Wait until no snapshot is open, at most ``copy_patience``.

        Copying while the agent computes slows its step (shared cores and memory bus);
        between its steps, copying costs it nothing. A busy agent still gets its copy:
        after ``copy_patience`` the block is copied anyway.
        """
        self.heartbeat()
        with self._switch:
            self._switch.wait_for(lambda: self._current.readers == 0, self.copy_patience)

    def _known(self, name: str) -> str:
        if name not in self._training:
            raise KeyError(f"no model named {name!r}; the models are {sorted(self._training)}")
        return name

    def _enter(self) -> Generation:
        with self._switch:
            generation = self._current
            generation.readers += 1
        if generation.ready is not None:
            try:
                generation.ready.hold_back_current_streams()
            except BaseException:
                self._leave(generation, fenced=False)
                raise
        return generation

    def _leave(self, generation: Generation, fenced: bool = True) -> None:
        """Close a snapshot; the count drops even if fencing fails (publish would hang)."""
        done = None
        try:
            if fenced:
                done = fence(generation.devices)
        finally:
            with self._switch:
                if done is not None:
                    generation.reader_fences[threading.get_ident()] = done
                generation.readers -= 1
                if generation.readers == 0:
                    self._switch.notify_all()


def _for_inference(module: nn.Module) -> nn.Module:
    module.eval()
    module.requires_grad_(False)
    for param in module.parameters():
        param.grad = None
    return module


class InferenceModels(ReadOnlyHandle):
    """The inference thread's read-only handle on the gate.

    Its writing methods (``publish``, ``to``...) raise
    :class:`~ami.sharing.ReadOnlyError`; models are reached only through
    :meth:`snapshot`.
    """

    def __init__(self, gate: ModelGate) -> None:
        self._gate = gate
        self._local = threading.local()
        self._last: tuple[Generation, tuple[str, ...]] | None = None

    @override
    def _read_only_target(self) -> ModelGate:
        return self._gate

    @property
    def names(self) -> tuple[str, ...]:
        """The models' names."""
        return self._gate.names

    @property
    def version(self) -> int:
        """The number of the generation the next snapshot would pin."""
        return self._gate.version

    def holds_snapshot(self) -> bool:
        """Whether the calling thread has a snapshot open."""
        return getattr(self._local, "snapshot", None) is not None

    def snapshot(self) -> _Pin:
        """Pin the current generation until the ``with`` block ends.

        Re-entrant on one thread: an inner ``snapshot()`` gets the outer one, so helper
        methods can open their own without splitting a step across generations.
        """
        return _Pin(self)

    def ages(self) -> dict[str, tuple[int, float]]:
        """For each model the last snapshot used: the age of the copy it used, now.

        Age is ``(optimizer steps, seconds)`` since the copy the agent acted with left
        training: how stale the agent's models are (the staleness figure of
        actor-learner systems).
        """
        if self._last is None:
            return {}
        generation, used = self._last
        now = time.monotonic()
        ages: dict[str, tuple[int, float]] = {}
        for name in used:
            entry = generation.models[name]
            ages[name] = (
                self._gate.optimizer_steps(name) - entry.optimizer_steps,
                now - entry.published_at,
            )
        return ages


class _Pin:
    """The ``with`` block of :meth:`InferenceModels.snapshot`.

    A small class rather than a generator-based context manager: the agent opens one
    every step, on the inference thread's hot path.
    """

    __slots__ = ("_generation", "_models", "_snapshot")

    def __init__(self, models: InferenceModels) -> None:
        self._models = models
        self._generation: Generation | None = None

    def __enter__(self) -> ModelSnapshot:
        models = self._models
        outer: ModelSnapshot | None = getattr(models._local, "snapshot", None)
        if outer is not None:
            return outer
        gate = models._gate
        self._generation = gate._enter()
        self._snapshot = ModelSnapshot(self._generation, gate.writer.name)
        models._local.snapshot = self._snapshot
        return self._snapshot

    def __exit__(self, *exc_info: object) -> None:
        generation = self._generation
        if generation is None:  # an inner block: the outer one releases
            return
        models = self._models
        models._local.snapshot = None
        self._snapshot.close()
        models._gate._leave(generation)
        models._last = (generation, self._snapshot.used)
