"""Saving a run's state without stopping the agent: threads give snapshots, main writes.

A save is a system-control command, so the main thread runs it. Each background thread
owns part of the state (inference: the agent, the world, the collector; training: the
models, optimizers, buffers, generators), so each takes a snapshot of its own part at
its next safe point, copies included, and hands it over with :meth:`Saver.contribute`:
write permission on that snapshot moves to the main thread. A parked thread serves the
request at once, so a save during a pause writes the paused state. Once every part is
in, the main thread encodes the checkpoint and writes it a few MB per turn of its
select loop, between API requests: neither the agent nor training waits on the disk.

At the end of a run each thread hands its last state over as it leaves its loop; the
main thread writes that final checkpoint once both have stopped (unless one failed:
then the last good checkpoint stays). A run that never trained writes none.
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ami.checkpoints.file_format import CheckpointError, CheckpointWriter, encode
from ami.checkpoints.store import CheckpointStore
from ami.sharing import Owned, writes

logger = logging.getLogger(__name__)

FINAL = 0
"""Job number of the checkpoint written when the run ends."""


class JobState(enum.Enum):
    """Where a save stands, as the status reports it."""

    WAITING = "waiting"
    """For the threads' snapshots."""
    WRITING = "writing"
    WRITTEN = "written"
    FAILED = "failed"
    SKIPPED = "skipped"
    """Nothing to save (no trainer has run yet)."""


@dataclass
class SaveJob:
    """One requested checkpoint."""

    number: int
    reason: str
    requested_at: float
    state: JobState = JobState.WAITING
    path: Path | None = None
    error: str | None = None
    writing_since: float | None = None
    finished_at: float | None = None

    def describe(self) -> dict[str, Any]:
        """For ``/api/status``: never "written" before the file is in place."""
        write_seconds = (
            self.finished_at - self.writing_since
            if self.finished_at is not None and self.writing_since is not None
            else None
        )
        return {
            "number": self.number,
            "reason": self.reason,
            "state": self.state.value,
            "path": str(self.path) if self.path is not None else None,
            "error": self.error,
            "write_seconds": write_seconds,
        }


RunDescription = Callable[[str], Mapping[str, Any]]
"""The run's own part of a checkpoint (config, clock), given the save's reason."""


class Saver(Owned):
    """Collects the threads' snapshots and writes checkpoints; the main thread writes it.

    Args:
        store: The checkpoint folder.
        threads: Names of the threads that each contribute a part.
        describe_run: The run's own part (resolved config, uptime...).
        every: Seconds between periodic saves; None saves only on request and at the end.
        chunk_bytes: Bytes written per turn of the main loop.
    """

    def __init__(
        self,
        store: CheckpointStore,
        threads: Sequence[str],
        describe_run: RunDescription,
        every: float | None = None,
        chunk_bytes: int = 8 << 20,
    ) -> None:
        super().__init__("checkpoints")
        self.store = store
        self.threads = tuple(threads)
        self.describe_run = describe_run
        self.every = every
        self.chunk_bytes = chunk_bytes
        self._lock = threading.Lock()
        self._offered: dict[str, tuple[int, Mapping[str, Any]]] = {}
        """Each thread's newest snapshot, and the newest request it answers."""
        self._final: dict[str, Mapping[str, Any]] = {}
        self._waiting: list[SaveJob] = []
        self._file: CheckpointWriter | None = None
        self._writing: SaveJob | None = None
        self._last: SaveJob | None = None
        self._next_periodic: float | None = None
        self._seen = 0
        self._reasons: dict[int, str] = {}
        self.written = 0
        self.notify: Callable[[], None] = lambda: None
        """Wakes the main thread when a snapshot arrives (set by the main thread)."""

    # -- any thread -------------------------------------------------------------------

    def contribute(self, thread: str, number: int, part: Mapping[str, Any]) -> None:
        """Hand over ``thread``'s snapshot, answering every save request up to ``number``.

        The snapshot must be the thread's own copy (see :func:`ami.state.snapshot`):
        from here on only the main thread reads it. ``number`` :data:`FINAL` is the
        thread's last state, given as it leaves its loop.
        """
        with self._lock:
            if number == FINAL:
                self._final[thread] = part
            else:
                self._offered[thread] = (number, part)
        self.notify()

    # -- the main thread --------------------------------------------------------------

    @writes
    def note_reason(self, number: int, reason: str) -> None:
        """Save request ``number`` was made for ``reason`` (default: ``request``, the API)."""
        self._reasons[number] = reason

    def _observe(self, requested: int) -> None:
        """Open a job for every save request made since the last turn."""
        while self._seen < requested:
            self._seen += 1
            number = self._seen
            job = SaveJob(number, self._reasons.pop(number, "request"), time.monotonic())
            self._waiting.append(job)

    @writes
    def start(self, now: float) -> None:
        """The run has started: clean up after a killed run, schedule the periodic saves."""
        self.store.remove_stale_partials()  # it logs each one
        if self.every is not None:
            self._next_periodic = now + self.every

    def periodic_due(self, now: float) -> bool:
        """Whether a periodic save should be requested now."""
        return self._next_periodic is not None and now >= self._next_periodic

    @writes
    def periodic_requested(self, number: int, now: float) -> None:
        """Periodic save request ``number`` was just made; schedule the next one."""
        self.note_reason(number, "periodic")
        if self.every is not None:
            self._next_periodic = now + self.every

    def seconds_to_next(self, now: float) -> float | None:
        """How long the main loop may sleep: 0 while writing, else until a periodic save."""
        if self._writing is not None or self._ready(peek=True) is not None:
            return 0.0
        if self._next_periodic is None:
            return None
        return max(0.0, self._next_periodic - now)

    @writes
    def poll(self, requested: int, alive: Callable[[str], bool]) -> None:
        """One turn of the main loop: write the next chunk, or begin the next ready save.

        Args:
            requested: Save requests made so far (:attr:`ThreadControl.save_requests`).
            alive: Whether a thread can still contribute; a save waiting for a thread
                that has ended fails, naming it.
        """
        self._observe(requested)
        if self._writing is None:
            self._fail_orphans(alive)
            ready = self._ready()
            if ready is None:
                return
            job, parts = ready
            self._begin(job, parts)
        if self._writing is not None:
            self._advance(self.chunk_bytes)

    @writes
    def finish(self) -> SaveJob | None:
        """At the end: complete a write in progress, then write the final checkpoint.

        Called once both threads have stopped, so it writes at full speed. The final
        checkpoint needs every thread's last state: a thread that failed gave none,
        and the previous checkpoint then stays the latest.
        """
        if self._writing is not None:
            self._advance(None)
        for job in self._waiting:
            self._close(job, JobState.FAILED, "the run ended before every thread saved")
        self._waiting = []
        with self._lock:
            final = dict(self._final)
        missing = sorted(set(self.threads) - set(final))
        if missing:
            latest = self.store.latest()
            logger.info(
                "no final checkpoint: thread(s) %s did not end cleanly; the latest is %s",
                ", ".join(missing),
                latest if latest is not None else "none",
            )
            return None
        job = SaveJob(FINAL, "final", time.monotonic())
        self._begin(job, final)
        if self._writing is not None:
            self._advance(None)
        return job

    def status(self) -> dict[str, Any]:
        """The latest checkpoint file and the newest save's state, for ``/api/status``."""
        latest = self.store.latest()
        newest = self._waiting[-1] if self._waiting else self._writing or self._last
        return {
            "latest": str(latest) if latest is not None else None,
            "written": self.written,
            "save": newest.describe() if newest is not None else None,
        }

    # -- internals --------------------------------------------------------------------

    def _ready(self, peek: bool = False) -> tuple[SaveJob, dict[str, Mapping[str, Any]]] | None:
        """The newest waiting save every thread has answered, with the parts to write.

        Unless ``peek``, the jobs it answers leave the waiting list.
        """
        with self._lock:
            offered = dict(self._offered)
        if not self._waiting or set(offered) != set(self.threads):
            return None
        answered = min(number for number, _ in offered.values())
        ready = [job for job in self._waiting if job.number <= answered]
        if not ready:
            return None
        if peek:
            return ready[-1], {}
        newest = ready[-1]  # one file answers every request it covers
        self._waiting = [job for job in self._waiting if job.number > answered]
        with self._lock:  # the snapshots now belong to this save; keep only the numbers
            for thread, (number, _) in offered.items():
                if self._offered[thread][0] == number:
                    self._offered[thread] = (number, {})
        return newest, {thread: part for thread, (_, part) in offered.items()}

    def _fail_orphans(self, alive: Callable[[str], bool]) -> None:
        with self._lock:
            offered = {thread: number for thread, (number, _) in self._offered.items()}
        for job in list(self._waiting):
            gone = [
                thread
                for thread in self.threads
                if not alive(thread) and offered.get(thread, -1) < job.number
            ]
            if gone:
                self._waiting.remove(job)
                self._close(job, JobState.FAILED, f"thread(s) {', '.join(gone)} ended first")

    def _begin(self, job: SaveJob, parts: Mapping[str, Mapping[str, Any]]) -> None:
        training = parts.get("training", {})
        if not training.get("trained", True):
            self._close(job, JobState.SKIPPED, "no trainer has run yet: nothing to save")
            return
        job.path = self.store.new_path()
        problem = training.get("non_finite")
        if problem:
            self._close(job, JobState.FAILED, f"refusing to save {job.path}: {problem}")
            return
        state = {"run": dict(self.describe_run(job.reason)), **parts}
        try:
            self._file = CheckpointWriter(job.path, encode(state))
        except (CheckpointError, TypeError, ValueError) as error:
            self._close(job, JobState.FAILED, str(error))
            return
        job.state = JobState.WRITING
        job.writing_since = time.monotonic()
        self._writing = job

    def _advance(self, budget: int | None) -> None:
        writer, job = self._file, self._writing
        assert writer is not None and job is not None
        try:
            done = writer.advance(budget)
        except CheckpointError as error:
            self._file, self._writing = None, None
            self._close(job, JobState.FAILED, str(error))
            return
        if not done:
            return
        self._file, self._writing = None, None
        assert job.path is not None
        self.store.commit(job.path)
        self.written += 1
        self._close(job, JobState.WRITTEN, None)
        logger.info("saved checkpoint %s (%s)", job.path, job.reason)

    def _close(self, job: SaveJob, state: JobState, error: str | None) -> None:
        job.state, job.error, job.finished_at = state, error, time.monotonic()
        self._last = job
        if state is JobState.FAILED:
            logger.error("checkpoint not saved (%s): %s", job.reason, error)
        elif state is JobState.SKIPPED:
            logger.info("checkpoint skipped (%s): %s", job.reason, error)
