"""The inference thread: one interaction step at a fixed interval.

Steps are scheduled on absolute deadlines (``start + k * interval``), so a step that
runs late does not push every later step back; a step that overruns a whole interval
skips the missed deadlines (counted in ``inference/overruns``) instead of bursting to
catch up. Between steps the thread blocks in :meth:`ThreadControl.wait`, which a pause
or shutdown interrupts at once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from typing_extensions import override

from ami.config_checks import positive_number
from ami.data.collector import StepCollector
from ami.interaction.environment import WorldEnded
from ami.interaction.interaction import Interaction
from ami.models.gate import InferenceModels
from ami.threads.background import BackgroundThread
from ami.threads.garbage import GcMode, GcWatch, SlackCollector, check_gc_mode
from ami.threads.scheduling import Realtime, check_realtime, make_realtime
from ami.throttle import Throttle

logger = logging.getLogger(__name__)

_OVERRUN_WARNING_INTERVAL = 10.0


class InferenceThread(BackgroundThread):
    """Runs the interaction (observe, decide, act) every ``interval`` seconds.

    Args:
        interaction: The agent and its world.
        collector: Where the agent's steps go; its fill level is logged.
        tensorboard_dir: Folder of this thread's event file.
        models: The agent's models; the age of the copies each step used is charted as
            ``inference/model_age/<model>/{optimizer_steps,seconds}``.
        interval: Seconds between step starts.
        torch_threads: CPU threads per torch operation on this thread (None: the
            process's count).
        realtime: ``auto`` runs this thread on ``SCHED_FIFO`` where the system permits
            it (and says so when it does not), ``fifo`` refuses to start without it,
            ``off`` never asks (:mod:`ami.threads.scheduling`).
        time_scale: World seconds per wall second (``time_scale``): steps start every
            ``interval / time_scale`` wall seconds. The world's clock is its steps: it
            stops while paused and is saved with them
            (:attr:`world_seconds`).
        gc: ``auto`` leaves garbage collection to Python; ``inference`` collects after
            this thread's steps, in their slack, while the main thread keeps automatic
            collection off (:mod:`ami.threads.garbage`). Either way every collection
            is counted (``inference/gc_collections``).
        images_every: World seconds between the world's pictures of itself
            (:meth:`Environment.images`, e.g. the built-in world's map of visited cells),
            charted as ``images/world/<name>``, and once more at the end; None: never.
    """

    def __init__(
        self,
        interaction: Interaction,
        collector: StepCollector,
        tensorboard_dir: Path | str,
        models: InferenceModels | None = None,
        interval: float = 0.1,
        torch_threads: int | None = None,
        realtime: Realtime = "auto",
        time_scale: float = 1.0,
        images_every: float | None = 60.0,
        gc: GcMode = "auto",
    ) -> None:
        super().__init__("inference", tensorboard_dir, torch_threads)
        self.time_scale = positive_number("time_scale", time_scale)
        self.realtime = check_realtime("threads.inference.realtime", realtime)
        self.interaction = interaction
        self.collector = collector
        self.models = models
        self.interval = positive_number("threads.inference.interval", interval)
        self._period = self.interval / self.time_scale
        self._image_steps = (
            None
            if images_every is None
            else max(
                1,
                round(
                    positive_number("threads.inference.images_every", images_every) / self.interval
                ),
            )
        )
        """Steps between world pictures: on the world's clock, so time_scale keeps the count."""
        """Wall seconds between step starts."""
        self.steps = 0
        self.overruns = 0
        self._deadline: float | None = None  # set by the first tick, after the start
        self._last_start: float | None = None
        self._overrun_warnings = Throttle(_OVERRUN_WARNING_INTERVAL)
        self.gc = check_gc_mode("threads.gc", gc)
        self._gc_watch = GcWatch()
        self._slack_collector = SlackCollector() if self.gc == "inference" else None
        self._world: Mapping[str, float] = {}
        """The world's numbers after the last step (its ``metrics()``, e.g. coverage)."""

    @override
    def configure_scheduling(self) -> str:
        return make_realtime(self.realtime)

    @override
    def on_start(self) -> None:
        self.collector.begin_segment()  # a start follows a gap in time (after a resume)
        self.interaction.setup()
        self.control.on_pause(self.interaction.on_pause)
        self.control.on_resume(self._resume)
        logger.info(
            "ready: %s acting in %s every %s s%s; scheduling: %s",
            type(self.interaction.agent).__name__,
            type(self.interaction.environment).__name__,
            self.interval,
            ""
            if self.time_scale == 1
            else f" of world time ({self._period:.4g} s of wall "
            f"time: time_scale={self.time_scale:g})",
            self.scheduling,
        )

    @override
    def on_tick(self) -> None:
        now = time.perf_counter()
        if self._deadline is None:
            self._deadline = now
        if now < self._deadline:
            self.control.wait(self._deadline - now)
            return
        try:
            self._step(now, now - self._deadline)
        except WorldEnded as ended:
            logger.info("the world ended (%s); stopping the run", ended)
            self.finish()
            return
        self._deadline += self._period
        behind = time.perf_counter() - self._deadline
        if behind >= 0:
            missed = int(behind // self._period) + 1
            self._deadline += missed * self._period
            self.overruns += missed
            self._warn_overrun(missed)
        if self._slack_collector is not None:
            self._slack_collector.after_step(self._deadline - time.perf_counter(), self._period)

    def _step(self, started: float, delay: float) -> None:
        collections = self._gc_watch.take()  # since the previous step began
        self.interaction.step()
        finished = time.perf_counter()
        self.steps += 1
        values = {
            # How late the step started against its deadline: the wake-up's own jitter.
            "inference/step_delay": delay,
            "inference/step_time": finished - started,
            # Until the action was applied: what the world waits for (the rest is
            # the agent's bookkeeping after it, Agent.after_action).
            "inference/reaction_time": self.interaction.acted_at - started,
            # The step's two shares: the world's observation and the agent's work.
            "inference/observe_time": self.interaction.observe_seconds,
            "inference/agent_time": self.interaction.agent_seconds,
            "inference/overruns": float(self.overruns),
            "inference/pending_steps": float(self.collector.pending),
            "inference/dropped_steps": float(self.collector.dropped_total),
            # Any thread's: a late step beside a collection was the collector's.
            "inference/gc_collections": float(collections),
        }
        if self._last_start is not None:
            values["inference/step_interval"] = started - self._last_start
        self._last_start = started
        step_metrics = self.interaction.metrics()
        values.update({f"inference/{key}": value for key, value in step_metrics.items()})
        # One new dict per step, swapped in whole: the main thread reads it for the status.
        self._world = {
            key.removeprefix("world/"): float(value)
            for key, value in step_metrics.items()
            if key.startswith("world/")
        }
        if self.models is not None:
            for name, (optimizer_steps, seconds) in self.models.ages().items():
                values[f"inference/model_age/{name}/optimizer_steps"] = float(optimizer_steps)
                values[f"inference/model_age/{name}/seconds"] = seconds
        self.metrics.scalars(values, self.steps)
        if self._image_steps is not None and self.steps % self._image_steps == 0:
            self._chart_world_images()  # after the step, in its slack: milliseconds, rarely

    def _chart_world_images(self) -> None:
        for name, image in self.interaction.environment.images().items():
            self.metrics.image(f"images/world/{name}", image, self.steps)

    def _resume(self) -> None:
        self.interaction.on_resume()
        self._deadline = None
        self._last_start = None

    def _warn_overrun(self, missed: int) -> None:
        if self._overrun_warnings.ready():
            logger.warning(
                "step %d took longer than the %.4g s interval; skipped %d deadline(s) "
                "(%d so far). Lengthen threads.inference.interval, lower time_scale or "
                "lighten the agent.",
                self.steps,
                self._period,
                missed,
                self.overruns,
            )

    @override
    def checkpoint_state(self) -> Mapping[str, Any]:
        """The agent's and the world's state, the collector's counters, this thread's own."""
        return {
            "agent": self.interaction.agent.state_dict(),
            "environment": self.interaction.environment.state_dict(),
            "episodes": self.interaction.state_dict(),
            "collector": self.collector.state_dict(),
            "steps": self.steps,
            "overruns": self.overruns,
            # The world's clock when saved (its steps times the interval): what a
            # checkpoint's moment means for the world, at any time_scale. Derived from
            # steps, so a resume needs only those.
            "world_seconds": self.world_seconds,
        }

    def restore(self, state: Mapping[str, Any]) -> None:
        """Load :meth:`checkpoint_state` (on the building thread, before :meth:`start`)."""
        self.interaction.agent.load_state_dict(state["agent"])
        self.interaction.environment.load_state_dict(state["environment"])
        if "episodes" in state:  # checkpoints from before episodes existed have none
            self.interaction.load_state_dict(state["episodes"])
        self.collector.load_state_dict(state["collector"])
        self.steps = int(state["steps"])
        self.overruns = int(state["overruns"])

    @override
    def on_end(self) -> None:
        if self._image_steps is not None and self.steps % self._image_steps != 0:
            self._chart_world_images()  # where the run ended, unless just charted

    @override
    def on_finally(self) -> None:
        self.interaction.teardown()

    @property
    def world_seconds(self) -> float:
        """The world's clock: its steps times the interval (it stops while paused)."""
        return round(self.steps * self.interval, 9)  # no float noise in status lines

    @override
    def status(self) -> Mapping[str, object]:
        return {
            "steps": self.steps,
            "overruns": self.overruns,
            "interval": self.interval,
            "time_scale": self.time_scale,
            "world_seconds": self.world_seconds,
            "scheduling": self.scheduling,
            "world": self._world,  # e.g. the simulated world's cells_visited
        }
