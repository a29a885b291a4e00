"""CPU scheduling of the two background threads: the agent's clock ahead of training.

What limits the agent's timing on a small machine is not Python or the GIL but the
kernel's scheduler: training's torch keeps every core busy, and the inference thread,
waking at its deadline, waits for one to be handed back. Two levers, applied by each
thread to itself at its start, before it runs any torch operation:

- **The inference thread** asks for ``SCHED_FIFO`` (Linux): a real-time thread runs the
  moment it wakes, ahead of every normal thread. That needs root, ``CAP_SYS_NICE`` or a
  real-time limit (``ulimit -r``, ``RLIMIT_RTPRIO``). With ``realtime: auto`` a refusal
  falls back to normal scheduling and says so; ``realtime: fifo`` makes it an error
  (the run stops before it starts); ``off`` never asks. ``SCHED_RESET_ON_FORK`` keeps
  threads the inference thread might start from inheriting the priority.
- **The training thread** raises its own nice value (``threads.training.nice``, 10): a
  lower share for it when the agent wants a core, and no cost otherwise, since the
  agent sleeps most of the time. Any thread may lower its own priority, so this works
  without privileges. On Linux nice is per thread and inherited at creation, so torch's
  OpenMP workers, which the training thread creates at its first parallel operation,
  are niced with it.

Each thread reports what it got (``status()["scheduling"]`` and its log's ``ready``
line); nothing here ever claims a mode that was refused.
"""

from __future__ import annotations

import errno
import os
import threading
from typing import Literal

Realtime = Literal["auto", "fifo", "off"]

REALTIME_MODES: tuple[Realtime, ...] = ("auto", "fifo", "off")

FIFO_PRIORITY = 10
"""Low among real-time priorities (1-99): above every normal thread, below the kernel's
own real-time work (e.g. threaded interrupts run at 50)."""


class SchedulingError(RuntimeError):
    """``realtime: fifo`` was asked for and the system refused it."""


def check_realtime(key: str, mode: object) -> Realtime:
    """``mode`` if it is one of :data:`REALTIME_MODES`, else a ValueError naming ``key``."""
    if mode not in REALTIME_MODES:
        raise ValueError(
            f"{key}={mode!r}: expected auto (real-time where permitted), fifo (required) or off"
        )
    return mode


def make_realtime(mode: Realtime, key: str = "threads.inference.realtime") -> str:
    """Put the calling thread on ``SCHED_FIFO`` as ``mode`` asks; what it got, in words.

    Raises:
        SchedulingError: ``mode`` is ``fifo`` and the system refused (the message says
            what would permit it).
    """
    if mode == "off":
        return f"normal ({key}=off)"
    setter = getattr(os, "sched_setscheduler", None)
    if setter is None:
        return _refused(mode, key, "this platform has no SCHED_FIFO")
    policy = os.SCHED_FIFO | getattr(os, "SCHED_RESET_ON_FORK", 0)
    try:
        setter(0, policy, os.sched_param(FIFO_PRIORITY))  # 0: the calling thread (Linux)
    except PermissionError:
        return _refused(
            mode,
            key,
            "not permitted: needs root, CAP_SYS_NICE or a real-time limit "
            f"(ulimit -r {FIFO_PRIORITY}, or rtprio in /etc/security/limits.conf)",
        )
    except OSError as error:
        return _refused(mode, key, os.strerror(error.errno or errno.EINVAL))
    return f"SCHED_FIFO priority {FIFO_PRIORITY}"


def lower_priority(nice: int | None) -> str:
    """Raise the calling thread's nice value by ``nice``; what it got, in words."""
    if nice is None or nice == 0:
        return "normal"
    setpriority = getattr(os, "setpriority", None)
    if setpriority is None:
        return "normal (this platform cannot nice one thread)"
    tid = threading.get_native_id()
    try:
        current = os.getpriority(os.PRIO_PROCESS, tid)
        target = min(19, current + nice)
        setpriority(os.PRIO_PROCESS, tid, target)  # a thread id: this thread only (Linux)
    except OSError as error:
        return f"normal (nice refused: {os.strerror(error.errno or errno.EPERM)})"
    return f"nice {target:+d}"


def _refused(mode: Realtime, key: str, why: str) -> str:
    if mode == "fifo":
        raise SchedulingError(f"{key}=fifo: SCHED_FIFO {why}; use {key}=auto to run without")
    return f"normal (SCHED_FIFO {why})"
