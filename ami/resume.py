"""Continuing a run from a checkpoint, and the saver that writes the next ones.

Part of the composition root (:mod:`ami.experiment`): it needs the whole experiment at
once, still unstarted and owned by the building thread, to check that the checkpoint
fits before anything runs and to put every part back where it was.

What a resume keeps and what it takes anew is described in
:mod:`ami.checkpoints.run_state`.
"""

from __future__ import annotations

import datetime
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from ami.checkpoints.file_format import CheckpointError
from ami.checkpoints.run_state import (
    LATEST,
    config_changes,
    describe_changes,
    misfits,
    open_for_resume,
)
from ami.checkpoints.saving import Saver
from ami.checkpoints.store import CheckpointStore
from ami.config_text import redacted_yaml
from ami.data.buffer import DataBuffer
from ami.experiment_checks import ConfigError, check_checkpoint_settings
from ami.models.gate import ModelGate
from ami.threads.inference import InferenceThread
from ami.threads.training import TrainingThread

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Resumed:
    """A checkpoint read for this run, and the settings that differ from its run's."""

    path: Path
    state: Mapping[str, Any]
    changes: list[tuple[str, Any, Any]]


def open_resume(cfg: DictConfig) -> Resumed | None:
    """Read and verify the checkpoint ``resume_from`` names (None when it is unset).

    Raises:
        ConfigError: Nothing there, or the file is not a sound checkpoint; the
            message names ``resume_from``, the file and the cause.
    """
    source = cfg.get("resume_from")
    if source is None:
        return None
    task_dir = Path(str(cfg.paths.log_dir)) / str(cfg.task_name)
    source = _beside_the_project(str(source), Path(str(cfg.paths.root_dir)))
    try:
        path, state = open_for_resume(source, task_dir)
    except FileNotFoundError as error:
        raise ConfigError(str(error)) from None
    except CheckpointError as error:
        raise ConfigError(f"resume_from={str(source)!r}: {error}") from None
    changes = config_changes(str(state["run"]["config"]), cfg)
    logger.info("resuming from %s; settings changed since: %s", path, describe_changes(changes))
    return Resumed(path, state, changes)


def _beside_the_project(source: str, root: Path) -> str:
    """A relative path that is not under the shell's directory, taken from the project's.

    Runs are written under the project's ``logs/`` wherever the shell is, so
    ``resume_from=logs/default/runs/<run>`` typed from another folder means the
    project's; the path used is logged. Paths found from the shell's directory win.
    """
    path = Path(source)
    if source == LATEST or path.is_absolute() or path.exists():
        return source
    candidate = root / path
    if candidate.exists():
        logger.info("resume_from=%s: not under %s; using %s", source, Path.cwd(), candidate)
        return str(candidate)
    return source


def restore(
    resumed: Resumed,
    models: ModelGate,
    buffers: Mapping[str, DataBuffer],
    inference: InferenceThread,
    training: TrainingThread,
) -> None:
    """Put the checkpoint's state into the unstarted experiment, or refuse before start.

    Raises:
        ConfigError: The checkpoint does not fit this config (other models or
            trainers, other tensor shapes, another buffer layout); names the config
            keys that differ.
    """
    state = resumed.state
    path = resumed.path
    saved_training, saved_inference = state["training"], state["inference"]
    saved_models = saved_training["models"]["models"]

    def refuse(what: str) -> ConfigError:
        changed = describe_changes(resumed.changes)
        return ConfigError(
            f"cannot resume from {path}: {what}. Settings that differ from the "
            f"checkpoint's run: {changed}"
        )

    if set(saved_models) != set(models.names):
        raise refuse(
            f"model.models: the checkpoint has {sorted(saved_models)}, this config "
            f"{sorted(models.names)}"
        )
    trainers = training.trainers
    if set(saved_training["trainers"]) != set(trainers):
        raise refuse(
            f"model.trainers/agent.trainers: the checkpoint has "
            f"{sorted(saved_training['trainers'])}, this config {sorted(trainers)}"
        )
    modules = {name: models.training_module(name) for name in models.names}
    wrong = misfits(saved_models, modules)
    if wrong:
        shown = "; ".join(wrong[:3]) + (f"; and {len(wrong) - 3} more" if len(wrong) > 3 else "")
        raise refuse(f"the saved models do not fit this config's ({shown})")
    models.load_state_dict(saved_training["models"])
    saved_buffers = saved_training.get("buffers")
    if saved_buffers is not None:
        for name, buffer in buffers.items():
            if name not in saved_buffers:
                logger.warning("buffer %s was not in the checkpoint: it starts empty", name)
                continue
            try:
                buffer.load_state_dict(saved_buffers[name])
            except ValueError as error:
                raise refuse(str(error)) from None
    else:
        logger.info("the checkpoint holds no buffers (checkpoint.buffers=false): they start empty")
    inference.restore(saved_inference)
    training.restore(saved_training, buffers_restored=saved_buffers is not None)


def make_saver(cfg: DictConfig, directory: Path, resumed: Resumed | None) -> Saver:
    """The saver of this run, its checkpoint folder and the run's own part of each file."""
    settings = check_checkpoint_settings(cfg)
    before = float(resumed.state["run"]["uptime_seconds"]) if resumed is not None else 0.0
    started = time.monotonic()
    config = redacted_yaml(cfg)

    def describe_run(reason: str) -> dict[str, Any]:
        return {
            "config": config,
            "reason": reason,
            "saved_at": datetime.datetime.now(datetime.UTC).isoformat(),
            "uptime_seconds": before + time.monotonic() - started,
            "resumed_from": str(resumed.path) if resumed is not None else None,
        }

    store = CheckpointStore(directory, settings.keep_last)
    return Saver(store, ["inference", "training"], describe_run, every=settings.every)
