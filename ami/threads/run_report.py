"""What the main thread tells a researcher about the run while it runs, and at its end.

Three things, all read from the same status the web API serves, so they never disagree:

- a **progress line** every ``threads.progress_every`` seconds on the console and in
  ``main.log``: uptime, agent steps and steps per second since the previous line,
  overruns, each trainer's optimizer steps and loss, buffer fill, status, resources. It
  is what a sweep's console or a cluster job's log shows without TensorBoard;
- **resources** every ``threads.resources_every`` seconds as ``system/*`` scalars (the
  x axis is seconds of uptime): memory and CPU per thread, so a sweep shows which
  settings run out of memory or cores;
- the run's **key numbers** once at its end (:data:`FINAL_METRICS`): the scalars the
  HParams table and ``scripts/summarize.py`` compare runs by, also returned to the
  caller (``outcome.json``, the Optuna sweeper's objective).

Everything here runs on the main thread between API requests: a progress line is a
status read and one log record, a resource sample well under a millisecond.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import Any

from ami.config_checks import positive_number
from ami.metrics import EventWriter
from ami.metrics.resources import ResourceMonitor
from ami.throttle import Throttle

logger = logging.getLogger(__name__)

OUTCOME_CODES = {"completed": 0, "interrupted": 1, "failed": 2}
"""``run/outcome_code``: the outcome as a number, so that it charts and sorts."""

FINAL_METRICS = (
    "training/<trainer>/loss_final",
    "training/<trainer>/loss_best",
    "training/<trainer>/optimizer_steps",
    "inference/steps",
    "inference/steps_per_second",
    "inference/overruns_total",
    "inference/world/cells_visited_final",
    "eval/<name>_final",
    "run/uptime_seconds",
    "run/outcome_code",
)
"""The end-of-run scalars: ``loss_final`` is the mean loss of a trainer's last 50
optimizer steps, ``loss_best`` the lowest such mean; ``cells_visited_final`` only where
the world counts cells; ``eval/<name>_final`` the run's last evaluation
(:mod:`ami.evaluation`, e.g. ``eval/prediction_vs_copy_final``) where there is one."""


class RunReport:
    """The progress line, the resource charts and the end-of-run numbers of one run.

    Args:
        writer: The main thread's event file, in the run's ``tensorboard/`` folder;
            None charts nothing (the progress line still runs).
        resources: Samples memory and CPU; None charts no resources.
        progress_every: Seconds between progress lines; None: no progress line.
        resources_every: Seconds between resource samples.
    """

    def __init__(
        self,
        writer: EventWriter | None = None,
        resources: ResourceMonitor | None = None,
        progress_every: float | None = 10.0,
        resources_every: float = 5.0,
    ) -> None:
        if progress_every is not None:
            positive_number("threads.progress_every", progress_every)
        self.writer = writer
        self.resources = resources
        self.progress_every = progress_every
        self.resources_every = positive_number("threads.resources_every", resources_every)
        self.metrics: dict[str, float] = {}
        """The end-of-run numbers, once :meth:`finish` has run."""
        self._started: float | None = None
        self._next_progress = math.inf
        self._next_sample = math.inf
        self._last_line: tuple[float, int] | None = None
        """(time, agent steps) at the previous progress line, for its steps per second."""
        self._warned = Throttle(300.0)

    def start(self, now: float) -> None:
        """The threads are released: uptime counts from here."""
        self._started = now
        self._last_line = (now, 0)
        if self.progress_every is not None:
            self._next_progress = now + self.progress_every
        if self.resources is not None and self.writer is not None:
            self.resources.sample()  # the baseline CPU percentages are measured against
            self._next_sample = now + self.resources_every

    def seconds_to_next(self, now: float) -> float | None:
        """How long the main loop may sleep before :meth:`tick` has work."""
        due = min(self._next_progress, self._next_sample)
        return None if math.isinf(due) else max(0.0, due - now)

    def tick(self, now: float, status: Mapping[str, Any]) -> None:
        """Write what is due: a resource sample, a progress line (never raises for them)."""
        try:
            if now >= self._next_sample:
                self._next_sample = now + self.resources_every
                self._sample(now)
            if now >= self._next_progress:
                assert self.progress_every is not None
                self._next_progress = now + self.progress_every
                logger.info("progress: %s", self.progress_line(now, status))
        except Exception as error:
            # A chart or log line must never stop the run; say so, rarely.
            if self._warned.ready():
                logger.warning("progress report failed: %s: %s", type(error).__name__, error)

    def progress_line(self, now: float, status: Mapping[str, Any]) -> str:
        """One line a researcher reads on the console to see that the run is healthy."""
        threads = status.get("threads", {})
        inference = threads.get("inference", {})
        training = threads.get("training", {})
        steps = int(inference.get("steps", 0))
        then, steps_then = self._last_line or (now, steps)
        rate = (steps - steps_then) / (now - then) if now > then else 0.0
        self._last_line = (now, steps)
        parts = [
            f"up {_duration(self._uptime(now))}",
            str(status.get("status", "?")),
            f"agent {steps:,} steps ({rate:.1f}/s), {inference.get('overruns', 0)} overruns",
        ]
        for name, trainer in training.get("trainers", {}).items():
            loss = trainer.get("loss")
            shown = "no step yet" if loss is None else f"loss {loss:.4g}"
            parts.append(f"{name} {trainer.get('optimizer_steps', 0):,} steps, {shown}")
        buffers = training.get("buffers", {})
        if buffers:
            parts.append("buffer " + ", ".join(f"{n} {size:,}" for n, size in buffers.items()))
        collector = status.get("collector")
        if collector and collector.get("dropped"):
            parts.append(f"{collector['dropped']:,} steps dropped")
        if self.resources is not None and self.writer is not None:
            summary = self.resources.summary()
            if summary:
                parts.append(summary)
        return " | ".join(parts)

    def finish(self, now: float, status: Mapping[str, Any], outcome: str) -> dict[str, float]:
        """Compute the end-of-run numbers, chart them, and close the event file."""
        threads = status.get("threads", {})
        inference = threads.get("inference", {})
        training = threads.get("training", {})
        uptime = self._uptime(now)
        steps = int(inference.get("steps", 0))
        metrics: dict[str, float] = {}
        for name, trainer in training.get("trainers", {}).items():
            for key in ("loss_final", "loss_best"):
                if trainer.get(key) is not None:
                    metrics[f"training/{name}/{key}"] = float(trainer[key])
            metrics[f"training/{name}/optimizer_steps"] = float(trainer.get("optimizer_steps", 0))
        if inference:
            metrics["inference/steps"] = float(steps)
            metrics["inference/steps_per_second"] = steps / uptime if uptime > 0 else 0.0
            metrics["inference/overruns_total"] = float(inference.get("overruns", 0))
            cells = inference.get("world", {}).get("cells_visited")
            if cells is not None:
                metrics["inference/world/cells_visited_final"] = float(cells)
        for key, value in training.get("evaluation", {}).items():
            metrics[f"eval/{key}_final"] = float(value)
        metrics["run/uptime_seconds"] = uptime
        metrics["run/outcome_code"] = float(OUTCOME_CODES[outcome])
        self.metrics = metrics
        if self.writer is not None:
            try:
                self.writer.scalars(metrics, steps)
                if self.writer.hparams_open:
                    self.writer.hparams_end(outcome)  # the row's status in the HParams tab
            finally:
                self.writer.close()
        return metrics

    def _uptime(self, now: float) -> float:
        return now - self._started if self._started is not None else 0.0

    def _sample(self, now: float) -> None:
        if self.resources is None or self.writer is None:
            return
        values = self.resources.sample()
        if values:
            self.writer.scalars(values, round(self._uptime(now)))


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m{seconds:02d}s"
    if minutes:
        return f"{minutes}m{seconds:02d}s"
    return f"{seconds}s"
