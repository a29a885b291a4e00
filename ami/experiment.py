"""The composition root: a Hydra config in, a running three-thread system out.

Each part is instantiated from its config group through ``_target_`` (``model``,
``buffer``, ``agent``, ``interaction``, ``threads``, ``fabric``, ``web_api``), wired to
the others, and handed to the thread that writes it:

- the model gate and the buffers -> the training thread; the agent gets the gate's
  read-only inference side;
- the experience collector -> the inference thread writes it, the training thread
  takes from it;
- system control -> the main thread, which runs everything.
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from hydra.utils import instantiate
from lightning_fabric import Fabric
from omegaconf import DictConfig, OmegaConf

import ami.hydra_setup  # noqa: F401  (resolvers and schema, before composition)
from ami.config_checks import positive_number
from ami.config_text import redacted_override, redacted_yaml, scrub_hydra_records
from ami.data.buffer import DataBuffer
from ami.data.collector import StepCollector
from ami.evaluation import Evaluation
from ami.experiment_checks import (
    ConfigError,
    check_buffer_dtypes,
    check_checkpoint_settings,
    check_evaluation,
    check_trainers,
    check_world,
)
from ami.interaction.agent import Agent
from ami.interaction.environment import Environment
from ami.interaction.interaction import Interaction
from ami.metrics import EventWriter, layout_summary, run_hparams
from ami.metrics.resources import ResourceMonitor
from ami.models.gate import ModelGate
from ami.resume import make_saver, open_resume, restore
from ami.system.control import SystemControl
from ami.threads.garbage import check_gc_mode
from ami.threads.inference import InferenceThread
from ami.threads.main import MainThread
from ami.threads.run_report import RunReport
from ami.threads.training import TrainingThread
from ami.trainers.trainer import Trainer
from ami.web.api import ControlAPI

logger = logging.getLogger(__name__)


class RunFailed(RuntimeError):
    """The run ended with a failed or hung thread (the details are in its log)."""


@dataclass(frozen=True)
class RunOutcome:
    """How a run ended, and its key numbers; also written to ``<run dir>/outcome.json``.

    Attributes:
        outcome: ``completed`` (``max_uptime``, a shutdown request, the world ended),
            ``interrupted`` (Ctrl+C or SIGTERM) or ``failed`` (a thread failed or hung,
            or the config was refused before start).
        exit_code: 0, or 1 when failed.
        reason: Why it failed, in one line; None otherwise.
        metrics: The end-of-run numbers (:data:`ami.threads.run_report.FINAL_METRICS`),
            e.g. ``training/dynamics/loss_final``; empty when the run never started.
        output_dir: The run directory.
    """

    outcome: str
    exit_code: int
    reason: str | None
    metrics: Mapping[str, float]
    output_dir: Path


def run(cfg: DictConfig, output_dir: Path) -> int:
    """Build the system from ``cfg`` and run it; returns the process exit code."""
    return run_outcome(cfg, output_dir).exit_code


def run_outcome(
    cfg: DictConfig, output_dir: Path, stop_when: Callable[[], str | None] | None = None
) -> RunOutcome:
    """Build the system from ``cfg``, run it, and record how it ended.

    A config refused before start is logged (so the run folder's ``main.log`` says why,
    not only the console) and reported as ``failed``, like a thread's failure.

    Args:
        cfg: The composed config.
        output_dir: The run directory.
        stop_when: Asked by the main thread's loop twice a second: a reason to stop
            from outside (a sweep's stop file), or None.
    """
    threading.current_thread().name = "main"  # selects main.log
    scrub_hydra_records(cfg, output_dir)
    try:
        main = build(cfg, output_dir)
        main.stop_when = stop_when
    except KeyboardInterrupt:
        logger.info("interrupted before start")
        return _record(RunOutcome("interrupted", 0, None, {}, output_dir), None)
    except ConfigError as error:
        logger.error("the run could not start: %s", error)
        return _record(RunOutcome("failed", 1, str(error), {}, output_dir), None)
    except Exception as error:
        logger.exception("the run could not start")
        reason = f"{type(error).__name__}: {error}"
        return _record(RunOutcome("failed", 1, reason, {}, output_dir), None)
    try:
        exit_code = main.run()
    except Exception as error:
        logger.exception("the run failed")
        reason = main.reason or f"{type(error).__name__}: {error}"
        metrics = main.report.metrics if main.report is not None else {}
        return _record(RunOutcome("failed", 1, reason, metrics, output_dir), None)
    metrics = main.report.metrics if main.report is not None else {}
    outcome = RunOutcome(main.outcome or "failed", exit_code, main.reason, metrics, output_dir)
    return _record(outcome, main.api_url)


def _record(outcome: RunOutcome, api_url: str | None) -> RunOutcome:
    """Write ``outcome.json``, which sweeps and ``scripts/summarize.py`` read."""
    record = {
        "outcome": outcome.outcome,
        "exit_code": outcome.exit_code,
        "reason": " ".join(outcome.reason.split()) if outcome.reason else None,  # one line
        "overrides": _overrides(),
        # JSON has no NaN: a diverged loss is recorded as null.
        "metrics": {k: v if math.isfinite(v) else None for k, v in outcome.metrics.items()},
        "control_api": api_url,
    }
    try:
        outcome.output_dir.mkdir(parents=True, exist_ok=True)
        path = outcome.output_dir / "outcome.json"
        partial = path.with_name(path.name + ".partial")
        partial.write_text(json.dumps(record, indent=2, allow_nan=False, default=str) + "\n")
        os.replace(partial, path)
    except (OSError, ValueError) as error:
        logger.error("could not write outcome.json in %s: %s", outcome.output_dir, error)
    return outcome


def _overrides() -> list[str]:
    """This run's command-line overrides (under Hydra), secrets masked."""
    return [redacted_override(item) for item in _hydra_runtime()[1]]


def build(cfg: DictConfig, output_dir: Path) -> MainThread:
    """Instantiate every part and wire the three threads; nothing starts yet."""
    MainThread.check_max_uptime(cfg.max_uptime)  # before the slow part
    resumed = open_resume(cfg)
    output_dir.mkdir(parents=True, exist_ok=True)
    _save_config(cfg, output_dir)
    if cfg.threads.torch_threads is not None:
        torch.set_num_threads(int(cfg.threads.torch_threads))
    fabric = _make_fabric(cfg)
    fabric.seed_everything(int(cfg.seed), verbose=False)

    models = _make_models(cfg)
    models.to(fabric.device)
    configured_buffers = _make_buffers(cfg)
    buffers = {name: buffer for name, (_, buffer) in configured_buffers.items()}
    collector: StepCollector = instantiate(cfg.threads.collector)

    agent: Agent = instantiate(cfg.agent.agent)
    agent.bind(models.inference, collector)
    environment = _make_environment(cfg)
    evaluation = _make_evaluation(cfg)
    interaction = Interaction(
        environment, agent, record_truth=evaluation is not None and evaluation.wants_truth
    )
    trainers = _make_trainers(cfg)
    check_trainers(trainers, models.names, buffers)
    time_scale = positive_number("time_scale", cfg.get("time_scale", 1.0))
    check_world(environment, agent, trainers, configured_buffers, time_scale)
    if evaluation is not None:
        check_evaluation(evaluation, models.names, buffers, environment)

    tensorboard_dir = output_dir / "tensorboard"
    gc_mode = check_gc_mode("threads.gc", cfg.threads.get("gc", "auto"))
    # Partial configs: the live objects are passed in Python, not merged into configs.
    inference: InferenceThread = instantiate(cfg.threads.inference)(
        interaction=interaction,
        collector=collector,
        tensorboard_dir=tensorboard_dir,
        models=models.inference,
        time_scale=time_scale,
        gc=gc_mode,
    )
    training: TrainingThread = instantiate(cfg.threads.training)(
        collector=collector,
        buffers=buffers,
        models=models,
        trainers={name: trainer for name, (_, trainer) in trainers.items()},
        fabric=fabric,
        tensorboard_dir=tensorboard_dir,
        save_buffers=check_checkpoint_settings(cfg).buffers,
        evaluation=evaluation,
    )
    if resumed is not None:
        restore(resumed, models, buffers, inference, training)
    api: ControlAPI | None = instantiate(cfg.web_api) if cfg.get("web_api") else None
    # One folder, one event file per thread: TensorBoard shows the run as one entry.
    writer = EventWriter(tensorboard_dir, suffix="main")
    report = RunReport(
        writer,
        ResourceMonitor(
            {
                "main": threading.current_thread(),
                "inference": inference.thread,
                "training": training.thread,
            }
        ),
        progress_every=cfg.threads.get("progress_every", 10.0),
        resources_every=cfg.threads.get("resources_every", 5.0),
    )
    main = MainThread(
        SystemControl(),
        [inference, training],
        api=api,
        max_uptime=cfg.max_uptime,
        start_timeout=cfg.threads.start_timeout,
        stop_timeout=cfg.threads.stop_timeout,
        freeze_gc=cfg.threads.freeze_gc,
        gc=gc_mode,
        gil_switch_interval=cfg.threads.gil_switch_interval,
        hang_timeout=cfg.threads.hang_timeout,
        collector=collector,
        saver=make_saver(cfg, output_dir / "checkpoints", resumed),
        report=report,
        api_record=output_dir / "control_api.json",
    )
    # Wiring is done: hand each shared object to the one thread that writes it.
    models.transfer_to(training.thread)
    for buffer in buffers.values():
        buffer.transfer_to(training.thread)
    collector.transfer_to(inference.thread)
    collector.transfer_taking_to(training.thread)
    torch_threads = {thread.name: thread.torch_threads for thread in (inference, training)}
    _describe(cfg, models, list(trainers), torch_threads, writer, output_dir)
    return main


def _section(cfg: DictConfig, key: str) -> Mapping[str, Any]:
    node = OmegaConf.select(cfg, key)
    if node is None:
        return {}
    if not isinstance(node, DictConfig):
        raise ConfigError(f"{key} must be a mapping of name -> config, got {node!r}")
    return {str(name): value for name, value in node.items()}


_PRECISIONS = ("32-true", "32", "bf16-mixed", "16-mixed")


def _make_fabric(cfg: DictConfig) -> Fabric:
    # Modules stay float32 outside fabric.setup(); only autocasting precisions apply.
    if str(cfg.fabric.precision) not in _PRECISIONS:
        raise ConfigError(
            f"fabric.precision={cfg.fabric.precision!r}: use one of {', '.join(_PRECISIONS)} "
            "(models stay float32 and the training step autocasts)"
        )
    fabric: Fabric = instantiate(cfg.fabric)
    if fabric.world_size != 1:
        raise ConfigError(
            f"fabric.devices={cfg.fabric.devices}: ami trains in one training thread on one "
            "device; set fabric.devices=1 (and pick it with fabric.accelerator)"
        )
    return fabric


def _make_models(cfg: DictConfig) -> ModelGate:
    modules = {name: instantiate(node) for name, node in _section(cfg, "model.models").items()}
    try:
        return ModelGate(modules)
    except ValueError as error:
        raise ConfigError(f"model.models: {error}") from None


def _make_buffers(cfg: DictConfig) -> dict[str, tuple[str, DataBuffer]]:
    """Buffer name -> (its config key, the buffer)."""
    nodes = {
        "buffer": cfg.buffer,
        **{f"agent.buffers.{name}": node for name, node in _section(cfg, "agent.buffers").items()},
    }
    buffers: dict[str, tuple[str, DataBuffer]] = {}
    for path, node in nodes.items():
        check_buffer_dtypes(path, node)
        buffer: DataBuffer = instantiate(node)
        if buffer.shared_name in buffers:
            raise ConfigError(
                f"two buffers are named {buffer.shared_name!r} (buffer and agent.buffers); "
                "give each a distinct name"
            )
        buffers[buffer.shared_name] = (path, buffer)
    return buffers


def _make_environment(cfg: DictConfig) -> Environment:
    environment: Environment = instantiate(cfg.interaction.environment)
    accepted = environment.action_choices
    choices = cfg.interaction.get("action_choices")  # null: the world's own space decides
    configured = None if choices is None else tuple(int(count) for count in choices)
    if accepted is not None and configured is not None and configured != accepted:
        raise ConfigError(
            f"interaction.action_choices={list(configured)}, but "
            f"{type(environment).__name__} takes actions with choices {list(accepted)}"
        )
    for name, node in _section(cfg, "interaction.wrappers").items():
        if node is None:
            continue
        wrap = instantiate(node)
        if not callable(wrap):
            raise ConfigError(f"interaction.wrappers.{name} must set _partial_: true")
        environment = wrap(environment=environment)
    return environment


def _make_evaluation(cfg: DictConfig) -> Evaluation | None:
    node = OmegaConf.select(cfg, "model.evaluation")
    if node is None:
        return None
    evaluation = instantiate(node)
    if not isinstance(evaluation, Evaluation):
        raise ConfigError(
            f"model.evaluation must build an ami.evaluation.Evaluation, got "
            f"{type(evaluation).__name__}"
        )
    return evaluation


def _make_trainers(cfg: DictConfig) -> dict[str, tuple[str, Trainer]]:
    """Trainer name -> (its config key, the trainer)."""
    trainers: dict[str, tuple[str, Trainer]] = {}
    for group in ("model.trainers", "agent.trainers"):
        for name, node in _section(cfg, group).items():
            if node is None:
                continue
            if name in trainers:
                raise ConfigError(f"{group}.{name}: a trainer named {name!r} already exists")
            trainers[name] = (f"{group}.{name}", instantiate(node))
    return trainers


def _save_config(cfg: DictConfig, output_dir: Path) -> None:
    text = redacted_yaml(cfg)
    (output_dir / "config.yaml").write_text(text)


def _describe(
    cfg: DictConfig,
    models: ModelGate,
    trainers: Sequence[str],
    torch_threads: Mapping[str, int],
    writer: EventWriter,
    output_dir: Path,
) -> None:
    counts = {name: models.parameter_count(name) for name in models.names}
    logger.info("run directory: %s", output_dir)
    for name, count in counts.items():
        logger.info("model %s: %s parameters", name, f"{count:,}")
    table = "\n".join(f"| {name} | {count:,} |" for name, count in counts.items())
    writer.text("config/parameters", "| model | parameters |\n|---|---|\n" + table)
    writer.text("config/composed", "```yaml\n" + redacted_yaml(cfg) + "\n```")
    choices, overrides = _hydra_runtime()
    hparams = run_hparams(cfg, choices, overrides)
    hparams.update({f"params/{name}": count for name, count in counts.items()})
    hparams["torch_threads"] = torch.get_num_threads()
    hparams.update({f"torch_threads/{name}": n for name, n in torch_threads.items()})
    writer.hparams(hparams)  # the run's HParams row; its outcome follows at the end
    writer.summary(layout_summary(trainers))
    writer.flush()


def _hydra_runtime() -> tuple[dict[str, str | None], list[str]]:
    """The option picked in each config group and the command-line overrides, under Hydra."""
    try:
        from hydra.core.hydra_config import HydraConfig

        hydra = HydraConfig.get()
    except ValueError:
        return {}, []
    choices = {str(k): None if v is None else str(v) for k, v in hydra.runtime.choices.items()}
    return choices, [str(item) for item in hydra.overrides.task]
