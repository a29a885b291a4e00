"""The training thread: take new experience, run whichever trainers have enough of it.

When no trainer is ready the thread blocks in :meth:`ThreadControl.wait` until the
collector signals a new step (or a pause/shutdown arrives), so an idle system costs
almost nothing. Inside a run, trainers reach a safe point between optimizer steps, so a
pause is acknowledged within one step, not one run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from pathlib import Path

from lightning_fabric import Fabric
from typing_extensions import override

from ami.checkpoints import load_checkpoint, save_checkpoint
from ami.data.buffer import DataBuffer
from ami.data.collector import StepCollector
from ami.models.gate import ModelGate
from ami.system.control import ThreadControl
from ami.threads.background import BackgroundThread
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
        checkpoint_dir: Where checkpoints go: on request (``POST /api/save``) and when
            the run stops. None saves nothing.
        resume_from: A checkpoint (or a run directory) to start from.
        torch_threads: CPU threads per torch operation on this thread (None: the
            process's count).
    """

    def __init__(
        self,
        collector: StepCollector,
        buffers: Mapping[str, DataBuffer],
        models: ModelGate,
        trainers: Mapping[str, Trainer],
        fabric: Fabric,
        tensorboard_dir: Path | str,
        checkpoint_dir: Path | str | None = None,
        resume_from: Path | str | None = None,
        torch_threads: int | None = None,
    ) -> None:
        super().__init__("training", tensorboard_dir, torch_threads)
        self.collector = collector
        self.buffers = dict(buffers)
        self.models = models
        self.trainers = dict(trainers)
        self.fabric = fabric
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
        self.resume_from = Path(resume_from) if resume_from is not None else None
        self.steps_taken = 0
        self.saves_served = 0
        self.checkpoint: Path | None = None
        self._started = False

    @override
    def bind(self, control: ThreadControl, notify_main: Callable[[], None]) -> None:
        super().bind(control, notify_main)
        # New experience wakes this thread from its idle wait.
        self.collector.on_append(control.wake)

    @override
    def on_start(self) -> None:
        for name, trainer in self.trainers.items():
            trainer.bind(name, self.models, self.buffers, self.fabric, self.control, self.metrics)
            trainer.setup()
        logger.info(
            "ready: trainers %s on %s (%s precision)",
            ", ".join(self.trainers) or "(none)",
            self.fabric.device,
            self.fabric.strategy.precision.precision,
        )
        if self.resume_from is not None:
            path = load_checkpoint(self.resume_from, self.models, self.trainers)
            logger.info("resumed from %s", path)
        self._started = True

    @override
    def on_tick(self) -> None:
        requested = self.control.save_requests
        if requested > self.saves_served:
            self._save()
            # Counted once written: a status that reports the save served names its file.
            self.saves_served = requested
        self._take_new_steps()
        ran = False
        for trainer in self.trainers.values():
            if not self.control.is_active():
                return
            if trainer.is_ready():
                ran = True
                if not trainer.run():
                    return
                self._take_new_steps()
        if not ran:
            self.metrics.flush()  # idle from here on: let the last run's charts reach disk
            self.control.wait()

    def _take_new_steps(self) -> None:
        taken = self.collector.take()
        if taken.dropped:
            logger.warning("%d steps were dropped before training could take them", taken.dropped)
        if not len(taken):
            return
        segments = taken.segments
        for buffer in self.buffers.values():
            buffer.extend(taken, segments)
        self.steps_taken += len(taken)
        values = {
            f"buffer/{name}/{key}": value
            for name, buffer in self.buffers.items()
            for key, value in buffer.metrics().items()
        }
        values["buffer/dropped_before_take"] = float(self.collector.dropped_total)
        self.metrics.scalars(values, self.steps_taken)

    @override
    def on_finally(self) -> None:
        # Keep what was learned, whatever stopped the run; but if this thread failed,
        # its models may be half-updated: leave the last good checkpoint in place.
        if self._started and self.error is None:
            self._save()

    def _save(self) -> None:
        if self.checkpoint_dir is None:
            return
        self.checkpoint = save_checkpoint(self.checkpoint_dir, self.models, self.trainers)
        logger.info("saved checkpoint %s", self.checkpoint)

    @override
    def status(self) -> Mapping[str, object]:
        return {
            # Optimizer steps of all trainers: what a stuck or parked thread stops adding to.
            "steps": sum(trainer.global_step for trainer in self.trainers.values()),
            "steps_taken": self.steps_taken,
            "trainers": {
                name: {"runs": trainer.runs, "optimizer_steps": trainer.global_step}
                for name, trainer in self.trainers.items()
            },
            "buffers": {name: len(buffer) for name, buffer in self.buffers.items()},
            "checkpoint": str(self.checkpoint) if self.checkpoint is not None else None,
            "saves_served": self.saves_served,
        }
