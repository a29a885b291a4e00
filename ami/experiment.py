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

import logging
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from hydra.utils import instantiate
from lightning_fabric import Fabric
from omegaconf import DictConfig, OmegaConf

import ami.hydra_setup  # noqa: F401  (resolvers and schema, before composition)
from ami.config_text import redacted_yaml, scrub_hydra_records
from ami.data.buffer import DataBuffer
from ami.data.collector import StepCollector
from ami.experiment_checks import (
    ConfigError,
    check_buffer_dtypes,
    check_checkpoint_settings,
    check_trainers,
)
from ami.interaction.agent import Agent
from ami.interaction.environment import Environment
from ami.interaction.interaction import Interaction
from ami.metrics import EventWriter
from ami.models.gate import ModelGate
from ami.resume import make_saver, open_resume, restore
from ami.system.control import SystemControl
from ami.threads.inference import InferenceThread
from ami.threads.main import MainThread
from ami.threads.training import TrainingThread
from ami.trainers.trainer import Trainer
from ami.web.api import ControlAPI

logger = logging.getLogger(__name__)


class RunFailed(RuntimeError):
    """The run ended with a failed or hung thread (the details are in its log)."""


def run(cfg: DictConfig, output_dir: Path) -> int:
    """Build the system from ``cfg`` and run it; returns the process exit code."""
    threading.current_thread().name = "main"  # selects main.log
    scrub_hydra_records(cfg, output_dir)
    try:
        main = build(cfg, output_dir)
    except KeyboardInterrupt:
        logger.info("interrupted before start")
        return 0
    return main.run()


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
    buffers = _make_buffers(cfg)
    collector: StepCollector = instantiate(cfg.threads.collector)

    agent: Agent = instantiate(cfg.agent.agent)
    agent.bind(models.inference, collector)
    environment = _make_environment(cfg)
    interaction = Interaction(environment, agent)
    trainers = _make_trainers(cfg)
    check_trainers(trainers, models.names, buffers)

    tensorboard_dir = output_dir / "tensorboard"
    # Partial configs: the live objects are passed in Python, not merged into configs.
    inference: InferenceThread = instantiate(cfg.threads.inference)(
        interaction=interaction,
        collector=collector,
        tensorboard_dir=tensorboard_dir / "inference",
        models=models.inference,
    )
    training: TrainingThread = instantiate(cfg.threads.training)(
        collector=collector,
        buffers=buffers,
        models=models,
        trainers={name: trainer for name, (_, trainer) in trainers.items()},
        fabric=fabric,
        tensorboard_dir=tensorboard_dir / "training",
        save_buffers=check_checkpoint_settings(cfg).buffers,
    )
    if resumed is not None:
        restore(resumed, models, buffers, inference, training)
    api: ControlAPI | None = instantiate(cfg.web_api) if cfg.get("web_api") else None
    main = MainThread(
        SystemControl(),
        [inference, training],
        api=api,
        max_uptime=cfg.max_uptime,
        start_timeout=cfg.threads.start_timeout,
        stop_timeout=cfg.threads.stop_timeout,
        freeze_gc=cfg.threads.freeze_gc,
        gil_switch_interval=cfg.threads.gil_switch_interval,
        hang_timeout=cfg.threads.hang_timeout,
        collector=collector,
        saver=make_saver(cfg, output_dir / "checkpoints", resumed),
    )
    # Wiring is done: hand each shared object to the one thread that writes it.
    models.transfer_to(training.thread)
    for buffer in buffers.values():
        buffer.transfer_to(training.thread)
    collector.transfer_to(inference.thread)
    collector.transfer_taking_to(training.thread)
    torch_threads = {thread.name: thread.torch_threads for thread in (inference, training)}
    _describe(cfg, models, torch_threads, tensorboard_dir / "main", output_dir)
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


def _make_buffers(cfg: DictConfig) -> dict[str, DataBuffer]:
    nodes = {
        "buffer": cfg.buffer,
        **{f"agent.buffers.{name}": node for name, node in _section(cfg, "agent.buffers").items()},
    }
    buffers: dict[str, DataBuffer] = {}
    for path, node in nodes.items():
        check_buffer_dtypes(path, node)
        buffer: DataBuffer = instantiate(node)
        if buffer.shared_name in buffers:
            raise ConfigError(
                f"two buffers are named {buffer.shared_name!r} (buffer and agent.buffers); "
                "give each a distinct name"
            )
        buffers[buffer.shared_name] = buffer
    return buffers


def _make_environment(cfg: DictConfig) -> Environment:
    environment: Environment = instantiate(cfg.interaction.environment)
    accepted = environment.action_choices
    configured = tuple(int(count) for count in cfg.interaction.action_choices)
    if accepted is not None and configured != accepted:
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
    torch_threads: Mapping[str, int],
    log_dir: Path,
    output_dir: Path,
) -> None:
    counts = {name: models.parameter_count(name) for name in models.names}
    logger.info("run directory: %s", output_dir)
    for name, count in counts.items():
        logger.info("model %s: %s parameters", name, f"{count:,}")
    writer = EventWriter(log_dir)
    try:
        table = "\n".join(f"| {name} | {count:,} |" for name, count in counts.items())
        writer.text("config/parameters", "| model | parameters |\n|---|---|\n" + table)
        writer.text("config/composed", "```yaml\n" + redacted_yaml(cfg, resolve=False) + "\n```")
        hparams: dict[str, float | int | str | bool] = {
            f"params/{name}": count for name, count in counts.items()
        }
        choices = _choices()
        hparams.update({f"choice/{group}": str(option) for group, option in choices.items()})
        hparams["seed"] = int(cfg.seed)
        hparams["torch_threads"] = torch.get_num_threads()
        hparams.update({f"torch_threads/{name}": n for name, n in torch_threads.items()})
        writer.hparams(hparams)
    finally:
        writer.close()


def _choices() -> dict[str, str]:
    """The option picked in each config group, when running under Hydra."""
    try:
        from hydra.core.hydra_config import HydraConfig

        runtime = HydraConfig.get().runtime.choices
    except ValueError:
        return {}
    return {str(k): str(v) for k, v in runtime.items() if not str(k).startswith("hydra")}
