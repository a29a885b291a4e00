"""Single-step mode for tests: the real threads, driven in lock step instead of by the clock.

The inference thread takes one step, then waits until the training thread has taken
every step appended so far and run every trainer that became ready; only then does it
take the next. What happens no longer depends on timing, so two runs of the same
config do exactly the same work: the test of exact resumes compares them bit for bit.

Selected through the config, as a user would select another thread implementation:
``threads.inference._target_=lockstep.LockstepInference`` (and ``LockstepTraining``),
with ``+threads.inference.stop_after=<steps>`` and ``+threads.inference.pause_at=<step>``.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from typing_extensions import override

from ami.checkpoints import CheckpointStore
from ami.experiment import build
from ami.threads import InferenceThread, TrainingThread

CONF = Path(__file__).resolve().parents[1] / "conf"

SMALL_DEFAULT = [
    "web_api=none",
    "fabric.accelerator=cpu",
    "interaction.width=32",
    "interaction.height=32",
    "threads.inference._target_=lockstep.LockstepInference",
    "threads.training._target_=lockstep.LockstepTraining",
    "threads.hang_timeout=null",
    "checkpoint.every=null",
    "checkpoint.buffers=true",
    "model.trainers.representation.min_new_steps=8",
    "model.trainers.representation.batch_size=8",
    "model.trainers.dynamics.min_new_steps=8",
    "model.trainers.dynamics.batch_size=4",
    "model.trainers.dynamics.sequence_length=4",
    "buffer.chunk_length=4",
    "agent.trainers.policy.rollout_length=16",
    "agent.trainers.policy.minibatch_size=8",
    "agent.buffers.trajectory.capacity=64",
]
"""The default experiment (curious agent, world model, sim world), small and in lock step."""

WAIT = 120.0
"""Seconds one side may wait for the other before the test calls it a deadlock."""


class Lockstep:
    """What the two threads of one run share: how far training has caught up."""

    def __init__(self) -> None:
        self.condition = threading.Condition()
        self.caught_up = -1
        """Steps training had taken when it last went idle with no trainer ready."""


CURRENT = Lockstep()
"""The run's shared state; a test calls :func:`reset` before building each run."""


def reset() -> None:
    global CURRENT
    CURRENT = Lockstep()


class LockstepTraining(TrainingThread):
    """Takes, trains until no trainer is ready, then reports that it has caught up."""

    @override
    def on_tick(self) -> None:
        self._take_new_steps()
        ran = False
        for trainer in self.trainers.values():
            if trainer.is_ready():
                ran = True
                if not trainer.run():
                    return
        if not ran:
            with CURRENT.condition:
                CURRENT.caught_up = self.steps_taken
                CURRENT.condition.notify_all()
            self.control.wait(1.0)


class LockstepInference(InferenceThread):
    """One step per tick, each after training has caught up with the last.

    Args:
        stop_after: Ends the run once :attr:`steps` reaches it (counted from the start
            of the first run, so a resumed run continues the count).
        pause_at: After this step, what a pause and a resume do to the agent and the
            stream (the same as a save, a stop and a resume from the checkpoint).
    """

    def __init__(self, *args: Any, stop_after: int, pause_at: int | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.stop_after = stop_after
        self.pause_at = pause_at

    @override
    def on_tick(self) -> None:
        if self.steps >= self.stop_after:
            self._wait_for_training()
            self.finish()
            return
        self._step(0.0, 0.0)
        if self.steps == self.pause_at:
            self.interaction.on_pause()
            self.interaction.on_resume()
        self._wait_for_training()

    def _wait_for_training(self) -> None:
        target = self.collector.appended_total
        with CURRENT.condition:
            done = CURRENT.condition.wait_for(lambda: CURRENT.caught_up >= target, WAIT)
        assert done, f"training did not catch up with step {self.steps} within {WAIT} s"


def compose_default(stop_after: int, *extra: str) -> Any:
    """The config of :func:`run_default`."""
    overrides = [*SMALL_DEFAULT, f"+threads.inference.stop_after={stop_after}", *extra]
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("launch", overrides=overrides)


def run_default(out: Path, stop_after: int, *extra: str) -> Path:
    """Run the small default experiment in lock step into ``out``; its final checkpoint."""
    cfg = compose_default(stop_after, *extra)
    reset()
    assert build(cfg, out).run() == 0
    latest = CheckpointStore(out / "checkpoints").latest()
    assert latest is not None, f"the run in {out} wrote no checkpoint"
    return latest
