r"""One learning job: the models it trains and reads, its data, and when it runs.

The training thread asks each trainer in turn whether it :meth:`~Trainer.is_ready`
(enough new data since its last run) and then :meth:`~Trainer.run`\\ s it: a fixed number
of optimizer steps on batches sampled from its buffer, after which the models it trained
are published to the inference thread as one generation.

Fabric decides device, precision and seeding. It wraps only the optimizers
(``fabric.setup_optimizers``); modules stay raw and are placed by the
:class:`~ami.models.ModelGate`, because a publication switches which module object
trains, and a module sealed inside ``fabric.setup(module)`` would keep training the old
one. Autocast is entered per step on the training thread, where it applies.
"""

from __future__ import annotations

import logging
import math
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from typing import Any

import torch
from lightning_fabric import Fabric
from torch import nn
from torch.optim import Optimizer

from ami.config_checks import positive_number, whole_number
from ami.data.buffer import DataBuffer
from ami.metrics import EventWriter
from ami.models.gate import ModelGate
from ami.models.optimizer_binding import BoundOptimizer
from ami.system.control import ThreadControl
from ami.trainers.loss_tracking import LossTracker
from ami.trainers.safe_points import (
    INNER_SAFE_POINTS_AFTER,
    StepInterrupted,
    StepStart,
    safe_points_in,
)

logger = logging.getLogger(__name__)


class Trainer(ABC):
    """Base of every trainer; subclasses define the loss.

    Args:
        trains: Models whose parameters this trainer updates (and publishes after a run).
        reads: Models it only reads; their training copies are frozen during its runs.
        buffer: Name of the buffer it samples.
        batch_size: Samples per optimizer step.
        sequence_length: Consecutive steps per sample (1 for single steps).
        min_new_steps: New steps the buffer must have received since the last run
            before the next run. The first run starts as soon as one batch exists.
        steps_per_run: Optimizer steps per run.
        lr: Learning rate of the default AdamW optimizer.
        weight_decay: Weight decay of the default optimizer.
        max_grad_norm: Gradient-norm clip; None disables clipping (the norm is
            still logged).
    """

    def __init__(
        self,
        trains: Sequence[str],
        reads: Sequence[str] = (),
        buffer: str = "experience",
        batch_size: int = 32,
        sequence_length: int = 1,
        min_new_steps: int = 64,
        steps_per_run: int = 16,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        max_grad_norm: float | None = 1.0,
    ) -> None:
        if not trains:
            raise ValueError("a trainer must train at least one model (trains=[...])")
        for key, value in {
            "batch_size": batch_size,
            "sequence_length": sequence_length,
            "steps_per_run": steps_per_run,
        }.items():
            whole_number(f"trainer {type(self).__name__}: {key}", value)
        whole_number(f"trainer {type(self).__name__}: min_new_steps", min_new_steps, minimum=0)
        positive_number(f"trainer {type(self).__name__}: lr", lr)
        self.trains = list(trains)
        self.reads = list(reads)
        self.buffer_name = buffer
        self.batch_size = batch_size
        self.sequence_length = sequence_length
        self.min_new_steps = min_new_steps
        self.steps_per_run = steps_per_run
        self.lr = lr
        self.weight_decay = weight_decay
        self.max_grad_norm = max_grad_norm
        self.name = type(self).__name__
        self.modalities: tuple[str, ...] = ()
        """Observation entries this trainer reads; the world must observe each."""
        self.global_step = 0
        """Optimizer steps taken so far; the x axis of this trainer's charts."""
        self.runs = 0
        self.losses = LossTracker()
        """The optimised loss in a few numbers, for the progress line and the run's metrics."""
        self._mark = 0
        self._in_run = 0
        """Optimizer steps done in the run under way (0 between runs)."""
        self._restore_flags: dict[str, list[bool]] = {}
        """During a run: the ``requires_grad`` flags of the read models, frozen meanwhile."""
        self.inner_safe_points_after = INNER_SAFE_POINTS_AFTER
        """Seconds a step must take for the next to have safe points inside it
        (:mod:`ami.trainers.safe_points`); 0 always, ``math.inf`` never."""
        self._last_step_seconds = math.inf  # the first step has them: its length is unknown
        self._step_start: StepStart | None = None

    def bind(
        self,
        name: str,
        models: ModelGate,
        buffers: Mapping[str, DataBuffer],
        fabric: Fabric,
        control: ThreadControl,
        metrics: EventWriter,
    ) -> None:
        """Connect the trainer to the runtime; names that do not exist fail here."""
        self.name = name
        self.check_wiring(name, models.names, buffers)
        self.models = models
        self.buffer = buffers[self.buffer_name]
        self.fabric = fabric
        self.control = control
        self.metrics = metrics

    def check_wiring(
        self, name: str, models: Sequence[str], buffers: Mapping[str, DataBuffer]
    ) -> None:
        """Raise unless the models and the buffer this trainer names exist and fit it.

        Called when the experiment is built, before anything starts, and again by
        :meth:`bind`.
        """
        for role, names in (("trains", self.trains), ("reads", self.reads)):
            unknown = [model for model in names if model not in models]
            if unknown:
                raise KeyError(
                    f"trainer {name}: {role}={unknown} names no model; models are {sorted(models)}"
                )
        if self.buffer_name not in buffers:
            raise KeyError(
                f"trainer {name}: buffer={self.buffer_name!r} names no buffer; "
                f"buffers are {sorted(buffers)}"
            )
        longest = buffers[self.buffer_name].longest_sequence
        if self.sequence_length > longest:
            raise ValueError(
                f"trainer {name}: sequence_length={self.sequence_length} is longer than "
                f"buffer {self.buffer_name} can give ({longest} steps)"
            )

    def setup(self) -> None:
        """Create the optimizer on the training thread, before the inference loop starts.

        Building the first optimizer imports a large part of torch under the GIL; doing
        it here keeps that stall away from the running agent. The gate keeps it on the
        training copies across publications: rebound in place when its type allows,
        else rebuilt by :meth:`configure_optimizer` from its state.
        """
        self._optimizer = BoundOptimizer(
            self._build_optimizer(self.trained_parameters()), rebuild=self._build_optimizer
        )
        self.models.attach_optimizer(self._optimizer)

    @property
    def optimizer(self) -> Optimizer:
        """The optimizer over the trained models' current training copies."""
        return self._optimizer.optimizer

    def _build_optimizer(self, parameters: Sequence[nn.Parameter]) -> Optimizer:
        optimizer: Optimizer = self.fabric.setup_optimizers(self.configure_optimizer(parameters))  # type: ignore[assignment]
        return optimizer

    def state_dict(self) -> dict[str, Any]:
        """Optimizer state and progress, for a checkpoint; also in the middle of a run.

        A save during a pause may find the trainer between two optimizer steps of a
        run: the state then says how far the run got, so a resumed run finishes it.
        """
        return {
            "optimizer": self.optimizer.state_dict(),
            "global_step": self.global_step,
            "runs": self.runs,
            "mark": self._mark,
            "in_run": self._in_run,
            "restore_flags": dict(self._restore_flags),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict` (after :meth:`setup`, before the models are published).

        State comes from the checkpoint, hyperparameters from this run's config: the
        optimizer's saved state (moments, step counts) is loaded, then each parameter
        group gets back the settings this run's optimizer was built with (learning
        rate, weight decay...). What changed is logged.
        """
        optimizer = self.optimizer
        fresh = [{k: v for k, v in g.items() if k != "params"} for g in optimizer.param_groups]
        optimizer.load_state_dict(state["optimizer"])
        changes = []
        for group, settings in zip(optimizer.param_groups, fresh, strict=True):
            for key, value in settings.items():
                if group.get(key) != value:
                    changes.append(f"{key} {group.get(key)} -> {value}")
                group[key] = value
        if changes:
            logger.info(
                "trainer %s: optimizer settings from this run's config, not the checkpoint's: %s",
                self.name,
                ", ".join(dict.fromkeys(changes)),
            )
        self.global_step = int(state["global_step"])
        self.runs = int(state["runs"])
        self._mark = int(state["mark"])
        self._in_run = int(state["in_run"])
        self._restore_flags = {
            str(name): [bool(flag) for flag in flags]
            for name, flags in state["restore_flags"].items()
        }

    @contextmanager
    def as_of_step_start(self) -> Iterator[None]:
        """Within: the state as it was when the step under way began (for a checkpoint).

        A thread parked at a safe point inside a step has drawn its batch and noise but
        changed nothing else; with the generators wound back, a checkpoint describes the
        step's start, and a run resumed from it redoes the step exactly.
        """
        with self._step_start.restored() if self._step_start is not None else nullcontext():
            yield

    def step_generators(self) -> list[torch.Generator]:
        """The generators besides the process-wide ones that an optimizer step draws from.

        The buffer's sampler by default; a trainer drawing noise from a generator of its
        own during a step adds it, so that a step interrupted midway can be redone.
        """
        return [self.buffer.generator]

    def forget_data_marks(self) -> None:
        """The buffers start empty (a checkpoint without them): count new data from zero."""
        self._mark = 0

    def configure_optimizer(self, parameters: Iterable[nn.Parameter]) -> Optimizer:
        """The optimizer for :meth:`trained_parameters`; override for another kind."""
        return torch.optim.AdamW(parameters, lr=self.lr, weight_decay=self.weight_decay)

    def trained_parameters(self) -> list[nn.Parameter]:
        """Every parameter of the trained models' training copies, frozen ones included.

        A frozen parameter gets no gradient, and optimizers skip it; one the trainer
        unfreezes later is then stepped like the others.
        """
        return [
            param
            for name in self.trains
            for param in self.models.training_module(name).parameters()
        ]

    def module(self, name: str) -> nn.Module:
        """The training copy of a model this trainer trains or reads."""
        if name not in self.trains and name not in self.reads:
            raise KeyError(
                f"trainer {self.name} uses model {name!r} but declares only "
                f"trains={self.trains} reads={self.reads}"
            )
        return self.models.training_module(name)

    def is_ready(self) -> bool:
        """Whether enough new data arrived for a run (or a resumed run is unfinished)."""
        if len(self.buffer) < self.batch_size or not self.buffer.can_sample(self.sequence_length):
            return False
        if self.runs == 0 or self._in_run > 0:
            return True
        return self.buffer.total_added - self._mark >= self.min_new_steps

    def sample(self) -> dict[str, torch.Tensor]:
        """One batch on the training device: ``(batch, ...)`` or ``(batch, time, ...)``."""
        if self.sequence_length == 1:
            batch = self.buffer.sample(self.batch_size)
        else:
            batch = self.buffer.sample_sequences(self.batch_size, self.sequence_length)
        return {key: value.to(self.fabric.device) for key, value in batch.items()}

    @abstractmethod
    def compute_loss(self, batch: Mapping[str, torch.Tensor]) -> Mapping[str, torch.Tensor]:
        """Losses for one batch: ``"loss"`` is optimised, the other entries are logged."""

    def run(self) -> bool:
        """One run of optimizer steps, then publication; False if shutdown interrupted it.

        An interrupted run (or one restored from a checkpoint taken in its middle) is
        finished by the next call, without starting over.
        """
        if self._in_run == 0:
            self._mark = self.buffer.total_added
            self._restore_flags = {
                name: [p.requires_grad for p in self.models.training_module(name).parameters()]
                for name in self.reads
            }
        frozen = {name: self.models.training_module(name) for name in self._restore_flags}
        for module in frozen.values():
            module.requires_grad_(False)
        completed = True
        try:
            if self._in_run == 0:
                self.on_run_start()
            while self._in_run < self.steps_per_run:
                if not self.control.manage_loop():
                    completed = False
                    break
                try:
                    self._optimizer_step()
                except StepInterrupted:
                    completed = False
                    break
                self._in_run += 1
        finally:
            for name, module in frozen.items():
                flags = self._restore_flags[name]
                for param, flag in zip(module.parameters(), flags, strict=True):
                    param.requires_grad_(flag)
        if completed:
            self._in_run = 0
            self._restore_flags = {}
            self.models.publish(self.trains)
            self.runs += 1
            self.on_run_end()
        return completed

    def on_run_start(self) -> None:
        """Called before a run's first step (e.g. to prepare a rollout once per run)."""

    def on_run_end(self) -> None:
        """Called after each completed run and publication (e.g. to log images)."""

    def on_step_end(self) -> None:
        """Called after each optimizer step, once its batch is spent.

        A step's batch must stay available until here (a step abandoned at a safe point
        is redone with the same batch): a trainer that hands out prepared batches (PPO's
        minibatches) removes the used one now, not when :meth:`sample` returns it.
        """

    def _optimizer_step(self) -> None:
        started = time.perf_counter()
        inner = self._last_step_seconds >= self.inner_safe_points_after
        self._step_start = StepStart(self.step_generators()) if inner else None
        try:
            with safe_points_in(self.control, self._step_modules()) if inner else nullcontext():
                batch = self.sample()
                with self.fabric.autocast():
                    losses = self.compute_loss(batch)
                loss = losses["loss"]
                self.fabric.backward(loss)
        except StepInterrupted:
            self.optimizer.zero_grad(set_to_none=True)
            assert self._step_start is not None
            self._step_start.restore()  # as if the step had never begun
            raise
        finally:
            self._step_start = None
        grad_norm = self._clip_gradients()
        if math.isfinite(grad_norm) or self.fabric.strategy.precision.precision == "16-mixed":
            # 16-mixed: the gradient scaler skips non-finite steps itself.
            self.optimizer.step()
        else:
            logger.warning(
                "trainer %s: non-finite gradient norm at step %d; step skipped",
                self.name,
                self.global_step,
            )
        self.optimizer.zero_grad(set_to_none=True)
        self.models.count_steps(self.trains)
        self.global_step += 1
        self.on_step_end()
        elapsed = time.perf_counter() - started
        self._last_step_seconds = elapsed
        values = {f"training/{self.name}/{key}": float(v.detach()) for key, v in losses.items()}
        values[f"training/{self.name}/grad_norm"] = grad_norm
        values[f"training/{self.name}/learning_rate"] = float(self.optimizer.param_groups[0]["lr"])
        values[f"training/{self.name}/samples_per_second"] = (
            self.batch_size * self.sequence_length / max(elapsed, 1e-9)
        )
        self.metrics.scalars(values, self.global_step)
        self.losses.add(values[f"training/{self.name}/loss"])

    def _step_modules(self) -> list[nn.Module]:
        """The training copies a step runs: those it trains and those it reads."""
        return [self.models.training_module(name) for name in [*self.trains, *self.reads]]

    def _clip_gradients(self) -> float:
        # Fabric clips every parameter of the optimizer (all trained models); the module
        # argument only satisfies its signature. An infinite bound measures the norm
        # (unscaled under 16-mixed) without clipping.
        norm = self.fabric.clip_gradients(
            self.module(self.trains[0]),
            self.optimizer,
            max_norm=self.max_grad_norm if self.max_grad_norm is not None else math.inf,
            error_if_nonfinite=False,
        )
        return float(norm) if norm is not None else 0.0
