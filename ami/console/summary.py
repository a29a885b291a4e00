"""The API's replies as a few lines a person reads at a glance.

Only what a reply says is shown, and in its own words (``pausing`` stays ``pausing``):
the console adds no state of its own, so it can never claim more than the run does.
Fields it does not know are left to ``--json``; missing ones are skipped, so a run of
an older or newer version still gets a summary.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeGuard

_CONTROL_KEYS = frozenset(
    {"alive", "state", "parked", "seconds_since_heartbeat", "error", "hung_at", "interval"}
)
"""A thread entry's own fields, shown apart from its progress (or, for the inference
interval, a setting rather than progress)."""

_SILENT_SECONDS = 5.0
"""A running thread this long without a heartbeat gets it shown: a hint of a hang
before the main thread's ``hang_timeout`` calls it one."""


@dataclass(frozen=True)
class Result:
    """What a command did: ``ok`` is False when the run did not do what was asked."""

    ok: bool
    text: str


def status(reply: Mapping[str, Any]) -> Result:
    """``GET /api/status``: state, uptime, each thread, the collector, the checkpoint."""
    return Result(True, status_text(reply))


def pause(reply: Mapping[str, Any]) -> Result:
    """``POST /api/pause``: paused only once the API acknowledges that every thread parked."""
    waited = _seconds(reply.get("ack_seconds"))
    if reply.get("acknowledged") is True:
        return Result(True, f"paused: every thread parked within {waited}")
    state = reply.get("status", "unknown")
    return Result(
        False,
        f"not paused yet: the threads had not all parked after {waited} (status: {state}); "
        "the pause stands unless the run is stopping, and `status` says once it holds",
    )


def resume(reply: Mapping[str, Any]) -> Result:
    """``POST /api/resume``: the state right after the request, as the API reports it."""
    return Result(True, f"resume requested: status {reply.get('status', 'unknown')}")


def save(reply: Mapping[str, Any]) -> Result:
    """``POST /api/save``: the request's number, and whether anything will write it."""
    number = reply.get("save_request")
    checkpoint = reply.get("checkpoint")
    if not isinstance(checkpoint, Mapping):
        return Result(
            False,
            f"save request #{number} sent, but this run keeps no checkpoints (its status "
            "has no 'checkpoint'): nothing will be written",
        )
    lines = [
        f"save request #{number} accepted: each thread hands over its state at its next "
        "safe point (at once while paused), then the checkpoint is written; `status` "
        "says when",
        f"checkpoint  {_checkpoint_text(checkpoint)}",
    ]
    return Result(True, "\n".join(lines))


def shutdown(reply: Mapping[str, Any]) -> Result:
    """``POST /api/shutdown``: the run stops cleanly (exit code 0) on its own from here."""
    return Result(
        True, f"shutdown requested: the run is stopping (status {reply.get('status', 'unknown')})"
    )


def status_text(reply: Mapping[str, Any]) -> str:
    """The status as lines: a headline, then one line per thread and part."""
    lines = [f"{reply.get('status', 'unknown')}, up {_duration(reply.get('uptime_seconds'))}"]
    threads = reply.get("threads")
    if isinstance(threads, Mapping):
        for name, entry in threads.items():
            if isinstance(entry, Mapping):
                lines.append(f"{name:<11} {_thread_text(entry)}")
                lines.extend(f"{'':<11} {text}" for text in _trainer_lines(entry))
    collector = reply.get("collector")
    if isinstance(collector, Mapping):
        counts = ", ".join(f"{_number(value)} {key}" for key, value in collector.items())
        lines.append(f"{'collector':<11} {counts}")
    checkpoint = reply.get("checkpoint")
    if isinstance(checkpoint, Mapping):
        lines.append(f"{'checkpoint':<11} {_checkpoint_text(checkpoint)}")
    return "\n".join(lines)


def _thread_text(entry: Mapping[str, Any]) -> str:
    state = str(entry.get("state", "unknown"))
    progress = [text for key, value in entry.items() if (text := _progress(key, value))]
    parts = [f"{state:<8} " + ("; ".join(progress) if progress else "no progress reported")]
    silent = entry.get("seconds_since_heartbeat")
    if state == "running" and _is_number(silent) and silent >= _SILENT_SECONDS:
        parts.append(f"(no heartbeat for {_seconds(silent)})")
    if entry.get("hung_at") is not None:
        parts.append(f"(hung at {entry['hung_at']})")
    if entry.get("error") is not None:
        parts.append(f"error: {entry['error']}")
    return " ".join(parts)


_COUNTS = {"steps": "steps", "overruns": "overruns", "steps_taken": "agent steps taken"}
"""Counters a thread reports, and how they read after their number."""


def _progress(key: str, value: Any) -> str:
    """One part of a thread's progress: ``1234 steps``, ``dynamics: 30 optimizer steps``."""
    if key in _CONTROL_KEYS:
        return ""
    if key in _COUNTS and _is_number(value):
        return f"{_number(value)} {_COUNTS[key]}"
    if key == "trainers":
        return ""  # a line of its own per trainer (_trainer_lines)
    if isinstance(value, Mapping):  # buffers' fill, the world's own numbers
        numbers = ", ".join(
            f"{name} {_number(number)}" for name, number in value.items() if _is_number(number)
        )
        return f"{key} {numbers}" if numbers else ""
    if _is_number(value):
        return f"{key} {_number(value)}"
    return ""


def _trainer_lines(entry: Mapping[str, Any]) -> list[str]:
    trainers = entry.get("trainers")
    if not isinstance(trainers, Mapping):
        return []
    return [
        _trainer_text(str(name), trainer)
        for name, trainer in trainers.items()
        if isinstance(trainer, Mapping)
    ]


def _trainer_text(name: str, trainer: Mapping[str, Any]) -> str:
    steps = trainer.get("optimizer_steps")
    text = f"{name}: {_number(steps)} optimizer steps" if _is_number(steps) else f"{name}:"
    loss = trainer.get("loss")
    return text + (f", loss {_number(loss)}" if _is_number(loss) else ", no loss yet")


def _checkpoint_text(checkpoint: Mapping[str, Any]) -> str:
    latest = checkpoint.get("latest")
    text = f"latest {latest}" if latest else "none written yet"
    written = checkpoint.get("written")
    if _is_number(written):
        text += f" ({_number(written)} written by this run)"
    job = checkpoint.get("save")
    if isinstance(job, Mapping):
        text += f"; save #{job.get('number')} ({job.get('reason')}) {job.get('state')}"
        if _is_number(job.get("write_seconds")):
            text += f" in {_seconds(job['write_seconds'])}"
        if job.get("error"):
            text += f": {job['error']}"
    return text


def _is_number(value: Any) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _number(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}" if math.isfinite(value) else str(value)
    return str(value)


def _seconds(value: Any) -> str:
    return f"{value:.3f} s" if _is_number(value) else "an unknown time"


def _duration(value: Any) -> str:
    """Uptime as people say it: ``12.3 s``, ``4 min 05 s``, ``2 h 03 min``."""
    if not _is_number(value) or value < 0:
        return "an unknown time"
    if value < 60:
        return f"{value:.1f} s"
    minutes, seconds = divmod(int(value), 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"
