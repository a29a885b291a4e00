"""Saving and restoring what training has learned: model weights, optimizer state, progress.

A checkpoint holds each model's training copy, each trainer's optimizer state and
counters, keyed by name (not by position, so adding a trainer does not scramble the
others). It is written to a temporary file and renamed into place, so a crash during
a save leaves the previous checkpoint intact. Experience buffers are not saved: they
are large and refill within minutes.

Everything here runs on the training thread, which writes the models and trainers.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from ami.models.gate import ModelGate
from ami.trainers.trainer import Trainer

logger = logging.getLogger(__name__)

FORMAT = 1
FILE_NAME = "latest.pt"


def save_checkpoint(directory: Path, models: ModelGate, trainers: Mapping[str, Trainer]) -> Path:
    """Write ``directory/latest.pt`` atomically; returns its path."""
    directory.mkdir(parents=True, exist_ok=True)
    state = {
        "format": FORMAT,
        "models": {name: models.training_module(name).state_dict() for name in models.names},
        "trainers": {name: trainer.state_dict() for name, trainer in trainers.items()},
    }
    path = directory / FILE_NAME
    partial = path.with_suffix(".partial")
    torch.save(state, partial)
    os.replace(partial, path)
    return path


def resolve(source: Path) -> Path:
    """The checkpoint file for ``source``: the file itself, or a run directory's latest."""
    for candidate in (source, source / "checkpoints" / FILE_NAME, source / FILE_NAME):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        f"resume_from={str(source)!r}: no checkpoint there; give a .pt file or a run "
        f"directory containing checkpoints/{FILE_NAME}"
    )


def load_checkpoint(source: Path, models: ModelGate, trainers: Mapping[str, Trainer]) -> Path:
    """Restore models (then publish them) and trainers from ``source``; returns the file.

    Raises:
        ValueError: The checkpoint's models or trainers do not match this experiment's;
            the message names both sets.
    """
    path = resolve(source)
    device = next(
        (p.device for name in models.names for p in models.training_module(name).parameters()),
        torch.device("cpu"),
    )
    state: dict[str, Any] = torch.load(path, map_location=device, weights_only=True)
    if state.get("format") != FORMAT:
        raise ValueError(f"{path}: checkpoint format {state.get('format')!r}, expected {FORMAT}")
    for kind, present in (("models", models.names), ("trainers", trainers)):
        saved = set(state[kind])
        if saved != set(present):
            raise ValueError(
                f"{path}: the checkpoint has {kind} {sorted(saved)}, this experiment has "
                f"{sorted(present)}; resume with the same model and agent configs"
            )
    for name in models.names:
        models.training_module(name).load_state_dict(state["models"][name])
    for name, trainer in trainers.items():
        trainer.load_state_dict(state["trainers"][name])
    models.publish()
    return path
