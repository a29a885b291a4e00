"""The training thread: take new experience, run whichever trainers have enough of it.

When no trainer is ready the thread blocks in :meth:`ThreadControl.wait` until the
collector signals a new step (or a pause/shutdown arrives), so an idle system costs
almost nothing. Inside a run, trainers reach a safe point between optimizer steps and, in
long steps, at every module inside them (:mod:`ami.trainers.safe_points`), so a pause is
acknowledged within one module's forward or backward pass, not one run.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from lightning_fabric import Fabric
from typing_extensions import override

from ami.checkpoints.run_state import non_finite
from ami.config_checks import positive_number, whole_number
from ami.data.buffer import DataBuffer
from ami.data.collector import StepCollector
from ami.evaluation import Evaluation
from ami.models.gate import ModelGate
from ami.openmp import wait_policy
from ami.state import global_rng_state, set_global_rng_state
from ami.system.control import ThreadControl
from ami.threads.background import BackgroundThread
from ami.threads.scheduling import lower_priority
from ami.throttle import Throttle
from ami.trainers.trainer import Trainer

logger = logging.getLogger(__name__)


class TrainingThread(BackgroundThread):
    """Owns the training copies of the models, the buffers and the trainers.

    Args:
        collector: The hand-off point with the inference thread.
        buffers: Datasets that every taken step is merged into, by name.
        models: Shared models; this thread writes them.
        trainers: Learning jobs by name, run in this order.
        fabric: Device, precision and seeding for the trainers.
        tensorboard_dir: Folder of this thread's event file.
        save_buffers: Put the buffers' contents into checkpoints
            (``checkpoint.buffers``): exact resumes, at the cost of their size.
        torch_threads: CPU threads per torch operation on this thread (None: the
            process's count).
        log_every: Seconds between two loss lines of one trainer in ``training.log``
            (mean, range and last loss of the steps since its previous line); None logs
            after every run.
        nice: Added to this thread's nice value (and so its torch workers'): training
            yields a core to the agent the moment it wakes (:mod:`ami.threads.scheduling`);
            None or 0 leaves it.
        evaluation: Holds blocks of experience out of the buffers it names and scores
            the models on them every ``evaluation.every`` seconds and at the end
            (``eval/*``, :mod:`ami.evaluation`); None: no evaluation.
    """

    def __init__(
        self,
        collector: StepCollector,
        buffers: Mapping[str, DataBuffer],
        models: ModelGate,
        trainers: Mapping[str, Trainer],
        fabric: Fabric,
        tensorboard_dir: Path | str,
        save_buffers: bool = False,
        torch_threads: int | None = None,
        log_every: float | None = 10.0,
        nice: int | None = 10,
        evaluation: Evaluation | None = None,
    ) -> None:
        super().__init__("training", tensorboard_dir, torch_threads)
        if log_every is not None:
            positive_number("threads.training.log_every", log_every)
        self.collector = collector
        self.buffers = dict(buffers)
        self.models = models
        self.trainers = dict(trainers)
        self.fabric = fabric
        self.save_buffers = save_buffers
        self.steps_taken = 0
        self._resume: Mapping[str, Any] | None = None
        self._resumed = False
        self._buffers_restored = False
        if nice is not None:
            whole_number("threads.training.nice", nice, minimum=0)
        self.nice = nice
        self._loss_logs = {name: Throttle(log_every or 0.0) for name in self.trainers}
        self.evaluation = evaluation
        self._next_evaluation = 0.0
        self._evaluated: Mapping[str, float] = {}
        """The last evaluation's numbers, swapped in whole (the status reads them)."""

    @override
    def bind(self, control: ThreadControl, notify_main: Callable[[], None]) -> None:
        super().bind(control, notify_main)
        # New experience wakes this thread from its idle wait.
        self.collector.on_append(control.wake)

    @override
    def configure_scheduling(self) -> str:
        # Its OpenMP workers' wait policy belongs here: it decides whether they hold
        # the cores between operations when the agent wakes (ami.openmp).
        return f"{lower_priority(self.nice)}; OpenMP workers {wait_policy()}"

    @override
    def on_start(self) -> None:
        self.models.heartbeat = self.control.beat
        for name, trainer in self.trainers.items():
            trainer.bind(name, self.models, self.buffers, self.fabric, self.control, self.metrics)
            trainer.setup()
        if self.evaluation is not None:
            self.evaluation.bind(self.models, self.fabric)
            self._next_evaluation = time.monotonic() + self.evaluation.every
        logger.info(
            "ready: trainers %s on %s (%s precision); scheduling: %s",
            ", ".join(self.trainers) or "(none)",
            self.fabric.device,
            self.fabric.strategy.precision.precision,
            self.scheduling,
        )
        if self._resume is not None:
            self._load_resumed(self._resume)
            self._resume = None

    def restore(self, state: Mapping[str, Any], buffers_restored: bool) -> None:
        """Take the training part of a checkpoint (before :meth:`start`).

        The models and buffers were loaded already, while the experiment was built;
        the trainers' optimizers exist only once :meth:`on_start` has built them, so
        their state (and the global generators', set last) waits until then.
        """
        self._resume = state
        self._resumed = True
        self.steps_taken = int(state["steps_taken"])
        self._buffers_restored = buffers_restored

    def _load_resumed(self, state: Mapping[str, Any]) -> None:
        for name, trainer in self.trainers.items():
            trainer.load_state_dict(state["trainers"][name])
            if not self._buffers_restored:
                trainer.forget_data_marks()
        scaler = _grad_scaler(self.fabric)
        if scaler is not None and state.get("precision") is not None:
            scaler.load_state_dict(state["precision"])
        set_global_rng_state(state["rng"])
        if self.evaluation is not None and state.get("evaluation") is not None:
            self.evaluation.load_state_dict(state["evaluation"])

    @override
    def checkpoint_state(self) -> Mapping[str, Any]:
        """Models (both copies), trainers, buffers if asked for, the global generators.

        ``trained`` says whether there is anything to keep (a run that never trained
        writes no checkpoint); ``non_finite`` names a parameter that is NaN or infinite,
        which no checkpoint may hold. A save answered while parked at a safe point inside
        an optimizer step describes the moment that step began
        (:mod:`ami.trainers.safe_points`).
        """
        with ExitStack() as stack:
            for trainer in self.trainers.values():  # parked inside a step: as of its start
                stack.enter_context(trainer.as_of_step_start())
            return self._state()

    def _state(self) -> dict[str, Any]:
        models = self.models.state_dict()
        scaler = _grad_scaler(self.fabric)
        return {
            "trained": self._resumed or any(t.global_step for t in self.trainers.values()),
            "non_finite": non_finite(models),
            "models": models,
            "trainers": {name: trainer.state_dict() for name, trainer in self.trainers.items()},
            "buffers": (
                {name: buffer.state_dict() for name, buffer in self.buffers.items()}
                if self.save_buffers
                else None
            ),
            "precision": scaler.state_dict() if scaler is not None else None,
            "rng": global_rng_state(),
            "steps_taken": self.steps_taken,
            # Held-out steps are data: kept where the buffers are.
            "evaluation": (
                self.evaluation.state_dict()
                if self.evaluation is not None and self.save_buffers
                else None
            ),
        }

    @override
    def on_tick(self) -> None:
        self._take_new_steps()
        ran = False
        for name, trainer in self.trainers.items():
            if not self.control.is_active():
                return
            if trainer.is_ready():
                ran = True
                if not trainer.run():
                    return
                if self._loss_logs[name].ready():
                    self._log_losses(trainer)
                self._take_new_steps()
        if self.evaluation is not None and time.monotonic() >= self._next_evaluation:
            self._evaluate(lambda: not self.control.is_active())
        if not ran:
            self.metrics.flush()  # idle from here on: let the last run's charts reach disk
            self.control.wait()

    @override
    def on_end(self) -> None:
        for trainer in self.trainers.values():
            self._log_losses(trainer)  # the steps since the last line, if any
        if self.evaluation is not None:
            self._evaluate(lambda: False)  # the run's final numbers: not cut short

    def _evaluate(self, interrupted: Callable[[], bool]) -> None:
        assert self.evaluation is not None
        results = self.evaluation.evaluate(self.steps_taken, interrupted)
        if not results:
            return  # too little held out yet, or a pause came first: try again later
        self._next_evaluation = time.monotonic() + self.evaluation.every
        self._evaluated = results
        self.metrics.scalars({f"eval/{key}": v for key, v in results.items()}, self.steps_taken)
        logger.info(
            "evaluation after %d steps: %s",
            self.steps_taken,
            ", ".join(f"{key} {value:.4g}" for key, value in results.items()),
        )

    @staticmethod
    def _log_losses(trainer: Trainer) -> None:
        window = trainer.losses.take_window()
        if window is None:
            return
        numbers = trainer.losses.numbers
        logger.info(
            "%s: %d optimizer steps (%d runs); loss over the last %d: mean %.4g, min %.4g, "
            "max %.4g, last %.4g; %d-step mean %.4g, best %.4g",
            trainer.name,
            trainer.global_step,
            trainer.runs,
            window.steps,
            window.mean,
            window.low,
            window.high,
            window.last,
            trainer.losses.window,
            numbers.final,
            numbers.best,
        )

    def _take_new_steps(self) -> None:
        taken = self.collector.take()
        if taken.dropped:
            logger.warning("%d steps were dropped before training could take them", taken.dropped)
        if not len(taken):
            return
        segments = taken.segments
        if self.evaluation is None:
            for buffer in self.buffers.values():
                buffer.extend(taken, segments)
        else:
            steps = list(taken)
            kept, kept_segments = self.evaluation.hold_out.split(steps, segments, self.steps_taken)
            for name, buffer in self.buffers.items():
                if name in self.evaluation.withhold_from:
                    buffer.extend(kept, kept_segments)
                else:
                    buffer.extend(steps, segments)
        self.steps_taken += len(taken)
        values = {
            f"buffer/{name}/{key}": value
            for name, buffer in self.buffers.items()
            for key, value in buffer.metrics().items()
        }
        values["buffer/dropped_before_take"] = float(self.collector.dropped_total)
        self.metrics.scalars(values, self.steps_taken)

    @override
    def status(self) -> Mapping[str, object]:
        return {
            # Optimizer steps of all trainers: what a stuck or parked thread stops adding to.
            "steps": sum(trainer.global_step for trainer in self.trainers.values()),
            "steps_taken": self.steps_taken,
            "trainers": {
                name: {
                    "runs": trainer.runs,
                    "optimizer_steps": trainer.global_step,
                    "loss": trainer.losses.numbers.last,
                    "loss_final": trainer.losses.numbers.final,
                    "loss_best": trainer.losses.numbers.best,
                }
                for name, trainer in self.trainers.items()
            },
            "buffers": {name: len(buffer) for name, buffer in self.buffers.items()},
            "scheduling": self.scheduling,
            "evaluation": self._evaluated,  # the last eval/* numbers (empty before the first)
        }


def _grad_scaler(fabric: Fabric) -> Any:
    """The gradient scaler of 16-mixed precision (its scale is state), or None."""
    return getattr(fabric.strategy.precision, "scaler", None)
