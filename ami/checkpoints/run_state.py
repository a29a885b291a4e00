"""A run's state as a checkpoint holds it, and how a new run takes it back.

A checkpoint has three parts, keyed by name (never by position): ``run`` (the resolved
config, the clock), ``inference`` (the agent, the world, the collector; see
:meth:`InferenceThread.checkpoint_state`) and ``training`` (both copies of every model,
the trainers, the buffers when ``checkpoint.buffers`` is on, the gradient scaler, the
global generators; see :meth:`TrainingThread.checkpoint_state`).

Resuming takes the *state* from the checkpoint and the *settings* from the new config:
learning rates, batch sizes and intervals may change between runs (each change is
logged, key by key). What cannot change (a model's shape, the set of models or
trainers) is refused before any thread starts, naming the config keys that differ.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from ami.checkpoints.file_format import CheckpointError, read
from ami.checkpoints.store import find_latest, resolve

logger = logging.getLogger(__name__)

LATEST = "latest"
"""``resume_from=latest``: the newest complete checkpoint of the task."""

_NOT_SETTINGS = ("resume_from", "paths", "hydra", "task_name", "max_uptime")
"""Config keys that say where and how long a run goes, not what it is."""


def non_finite(models: Mapping[str, Any]) -> str | None:
    """The first model tensor (of :meth:`ModelGate.state_dict`) that is NaN or infinite."""
    for name, model in models["models"].items():
        for copy in ("published", "training"):
            tensors = model[copy]
            if tensors is None:
                continue
            for key, tensor in tensors.items():
                if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
                    kind = "nan" if bool(torch.isnan(tensor).any()) else "inf"
                    return f"models.{name}: {key} of its {copy} copy is not finite ({kind})"
    return None


def open_for_resume(resume_from: str, task_dir: Path) -> tuple[Path, dict[str, Any]]:
    """The checkpoint ``resume_from`` names, read and verified.

    Raises:
        FileNotFoundError: Nothing there (the message names ``resume_from``).
        CheckpointError: The file is not a sound checkpoint (names the file and why).
    """
    path = find_latest(task_dir) if resume_from == LATEST else resolve(Path(resume_from))
    return path, read(path)


def config_changes(saved: str, current: DictConfig) -> list[tuple[str, Any, Any]]:
    """``(key, saved value, new value)`` for every setting that differs, in key order."""
    before = dict(_flat(OmegaConf.to_container(OmegaConf.create(saved), resolve=False)))
    try:
        now_container = OmegaConf.to_container(current, resolve=True)
    except Exception:  # an interpolation that needs Hydra's runtime
        now_container = OmegaConf.to_container(current, resolve=False)
    now = dict(_flat(now_container))
    keys = sorted(set(before) | set(now))
    missing = "<absent>"
    return [
        (key, before.get(key, missing), now.get(key, missing))
        for key in keys
        if not key.startswith(_NOT_SETTINGS) and before.get(key, missing) != now.get(key, missing)
    ]


def describe_changes(changes: list[tuple[str, Any, Any]]) -> str:
    """``model.size: small -> medium; ...`` for log lines and errors."""
    return "; ".join(f"{key}: {old} -> {new}" for key, old, new in changes) or "none"


def misfits(saved: Mapping[str, Any], modules: Mapping[str, torch.nn.Module]) -> list[str]:
    """Tensors of the saved models whose shape differs from this run's models."""
    found = []
    for name, module in modules.items():
        expected = {key: tuple(t.shape) for key, t in module.state_dict().items()}
        tensors = saved[name]["published"]
        for key in sorted(set(expected) | set(tensors)):
            have = tuple(tensors[key].shape) if key in tensors else None
            want = expected.get(key)
            if have != want:
                found.append(f"{name}.{key}: saved {have or 'absent'}, now {want or 'absent'}")
    return found


def _flat(node: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(node, Mapping):
        for key, value in node.items():
            yield from _flat(value, f"{prefix}{key}.")
    elif isinstance(node, list):
        yield prefix.rstrip("."), [_plain(item) for item in node]
    else:
        yield prefix.rstrip("."), _plain(node)


def _plain(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    return value


__all__ = [
    "LATEST",
    "CheckpointError",
    "config_changes",
    "describe_changes",
    "misfits",
    "non_finite",
    "open_for_resume",
]
