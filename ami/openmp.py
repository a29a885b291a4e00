"""OpenMP's wait policy for torch's CPU workers, chosen before torch loads.

Torch's CPU operators run on GNU OpenMP worker threads. With ``OMP_WAIT_POLICY``
unset, a worker that finishes its part of an operation spins for a while before it
sleeps, waiting for the next one (``GOMP_SPINCOUNT``: 300,000 iterations, 0 when
passive; ``OMP_DISPLAY_ENV=VERBOSE`` makes OpenMP print it as it loads). On a machine
with few cores the training thread's spinning workers hold the cores the agent needs
when it wakes at its deadline, and the agent's step starts late. ``PASSIVE`` makes them
sleep at once: on the fixed workload of ``benchmarks/loop.py`` (2 cores) it lowered the
step-start p99 from 0.94 and 0.82 ms to 0.72 and 0.58 ms and the maximum from 4.10 and
3.68 ms to 2.67 and 2.85 ms, with training's share of its standalone speed unchanged
within noise (docs/performance.md).

OpenMP reads the variable once, when its library loads with torch, so the choice has to
be in the environment before the first ``import torch``; nothing later can change it.
``ami`` therefore makes it as it is imported (``ami/__init__.py``), which the project's
entry points do before torch: it sets ``OMP_WAIT_POLICY=PASSIVE`` unless the variable
is set already. A researcher's own value is kept: ``OMP_WAIT_POLICY=ACTIVE`` spins
without end, ``GOMP_SPINCOUNT=300000`` brings back OpenMP's own default (the spin count
overrides what the policy implies). When torch was imported before ``ami``, it sets
nothing, since a value set then would claim a policy that is not in effect;
:func:`wait_policy` says which of these happened, and the training thread reports it
at start with its scheduling.

Setting the variable affects every OpenMP library this process loads after ``ami``,
and the processes it starts (a sweep's jobs inherit it, which keeps their runs alike).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, MutableMapping
from types import ModuleType

VARIABLE = "OMP_WAIT_POLICY"

SPIN = "GOMP_SPINCOUNT"
"""How long a worker spins before it sleeps; set, it overrides what the policy implies."""

DEFAULT = "PASSIVE"

_chosen: str | None = None


def choose_wait_policy(
    environ: MutableMapping[str, str] | None = None,
    modules: Mapping[str, ModuleType] | None = None,
) -> str:
    """Set :data:`VARIABLE` to :data:`DEFAULT` where it is unset and torch is not loaded.

    Args:
        environ: the environment to read and set (the process's, ``os.environ``, unless
            a test passes its own).
        modules: the loaded modules (``sys.modules`` unless a test passes its own): with
            ``torch`` among them, OpenMP has read its policy already.

    Returns:
        The policy in effect, in words (what :func:`wait_policy` reports after).
    """
    global _chosen
    environ = os.environ if environ is None else environ
    modules = sys.modules if modules is None else modules
    value = environ.get(VARIABLE)
    if "torch" in modules:
        current = f"{VARIABLE}={value} now" if value else f"{VARIABLE} unset: spin, then sleep"
        _chosen = f"as torch loaded before ami ({current}; import ami first to choose)"
        return _chosen
    if value:
        _chosen = f"{value.lower()} ({VARIABLE}={value} from the environment)"
    else:
        environ[VARIABLE] = DEFAULT
        _chosen = f"{DEFAULT.lower()} (ami's default; {SPIN}=300000 spins as OpenMP's own)"
    spin = environ.get(SPIN)
    if spin:  # OpenMP lets it override the spinning that the policy implies
        _chosen += f", spinning {SPIN}={spin} from the environment"
    return _chosen


def wait_policy() -> str:
    """How torch's OpenMP workers wait between operations, in words, as ``ami`` found it."""
    return _chosen if _chosen is not None else "not chosen (ami.openmp was never run)"
