"""A run's row in TensorBoard's HParams tab: its settings, its key numbers, its outcome.

What a run records, in its own ``tensorboard/`` folder (no sub-run folders):

- at its start, one *session start info* (:func:`session_start_summary`) holding
  :func:`run_hparams`: the option chosen in each config group (``choice/<group>``),
  every command-line override (its key, with the value the config ended up with, and
  all of them in one ``overrides`` string), and the config's key numbers (each
  trainer's learning rate and batch sizes, ``model.size``, ``buffer.capacity``,
  ``threads.inference.interval``, ``seed``, ``max_uptime``...);
- at its end, one *session end info* (:func:`session_end_summary`) whose status is the
  outcome: ``completed`` -> Success, ``failed`` -> Failure, ``interrupted`` -> Unknown;
- the metrics are ordinary scalars in the same folder (the end-of-run
  ``training/<trainer>/loss_final``, ``run/outcome_code``, ... written by the run).

Why this shape: how TensorBoard 2.21 builds the table (``plugins/hparams/
backend_context.py``, ``list_session_groups.py``), checked with a real server in
``tests/metrics/test_tensorboard_views.py`` for both loaders (``--load_fast=auto``,
the default, which reads through the Rust data server, and ``--load_fast=false``):

- A *session* is a TensorBoard run (a folder) holding a session start info; it is one
  row. Its hparams are that start info's values; its metric values are the *last*
  value of each metric scalar in that folder (and in folders below it, as groups).
- If any run in the log directory holds an *experiment summary* (``hparams_config``,
  what ``SummaryWriter.add_hparams`` writes into every run), TensorBoard takes the
  columns (hparams and metrics) from one of them only, "arbitrarily the first": the
  two loaders even pick different runs (of two runs, the Python loader took the
  second's, the Rust loader the first's). In a sweep whose jobs differ in structure
  (``agent=random,curiosity`` trains ``dynamics`` vs ``dynamics`` and ``policy``) the
  other runs' extra columns vanish: tensorboard issue #3371. So **no run writes an
  experiment summary**.
- Without one, TensorBoard computes the columns from all runs: the hparams are the
  union of every start info's keys (a number column stays a number column while every
  run gives a number), the metrics every scalar tag of every session folder. Every
  row then has all of its own hparams and metrics whatever its siblings hold; a key a
  run lacks is an empty cell. The cost: the metric list holds every scalar tag
  (sorted by name; the tab shows the first five: tick ``training/*/loss_final``,
  ``run/outcome_code`` and the others on its left; of the hparams it shows five,
  those that differ between runs first). Keys still depend only on the config's
  structure (:func:`run_hparams`), so an ordinary sweep's rows line up.
- TensorBoard keeps the **first** session start info of a run and ignores later ones
  (both loaders: summary metadata is kept from a tag's first record). A start info
  rewritten at the end with the final outcome would never show, and an ``outcome``
  hparam of "running" written at the start would claim a running run forever. So the
  outcome is not an hparam: it is the end info's status (a filter on the tab's left:
  Success, Failure, Unknown, Running) and the ``run/outcome_code`` metric
  (0 completed, 1 interrupted, 2 failed), both written once, at the end. A session
  without an end info (still running, or killed) shows status Unknown and no outcome
  code; ``interrupted`` has no status of its own in TensorBoard (there is no
  "aborted"), so it is Unknown too, told apart by ``run/outcome_code`` = 1.
- The end info is a separate tag, so a TensorBoard that is already open picks it up.

Example (the main thread, with its :class:`~ami.metrics.EventWriter`)::

    writer.hparams(run_hparams(cfg, choices, overrides))  # at the start
    ...                                                   # the end-of-run scalars
    writer.hparams_end("completed")                        # at the end
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping, Sequence
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import OverrideType
from hydra.errors import HydraException
from omegaconf import DictConfig, ListConfig, OmegaConf
from tensorboard.compat.proto.summary_pb2 import Summary
from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2

from ami.config_text import REDACTED, SECRETS

HParamValue = float | int | str | bool
"""What TensorBoard takes as an hparam value (ints are stored as numbers)."""

OUTCOME_STATUS = {
    "completed": api_pb2.STATUS_SUCCESS,
    "failed": api_pb2.STATUS_FAILURE,
    "interrupted": api_pb2.STATUS_UNKNOWN,
}
"""A run's outcome -> the session status TensorBoard shows (it has no "aborted")."""

CONFIG_KEYS = (
    "seed",
    "max_uptime",
    "task_name",
    "resume_from",
    "model.size",
    "buffer.capacity",
    "buffer.chunk_length",
    "agent.agent.action_repeat",
    "interaction.width",
    "interaction.height",
    "threads.inference.interval",
    "threads.inference.torch_threads",
    "threads.training.torch_threads",
    "threads.torch_threads",
    "fabric.accelerator",
    "fabric.precision",
)
"""The config's key numbers, each recorded where the config has the key."""

TRAINER_GROUPS = ("model.trainers", "agent.trainers")
TRAINER_KEYS = (
    "lr",
    "weight_decay",
    "batch_size",
    "minibatch_size",
    "sequence_length",
    "min_new_steps",
    "steps_per_run",
    "rollout_length",
    "epochs",
)
"""Settings recorded for every trainer (``<group>.<trainer>.<key>``) that has them."""


def run_hparams(
    cfg: DictConfig, choices: Mapping[str, str | None], overrides: Sequence[str]
) -> dict[str, HParamValue]:
    """The hparams of one run: group choices, command-line overrides, key numbers.

    The set of keys is a function of the config's structure (which keys exist), never
    of values: a key is recorded when the config has it, with ``null`` as ``"null"``.
    So jobs of one sweep, which share their override keys, share their hparam keys,
    and a column never appears only because one job set a value.

    Args:
        cfg: The composed config.
        choices: Config group -> option chosen (Hydra's ``runtime.choices``); Hydra's
            own groups (``hydra``, ``hydra/...``) are left out.
        overrides: The command line's overrides (Hydra's ``overrides.task``), e.g.
            ``["model.trainers.dynamics.lr=1e-3", "agent=random"]``.

    Returns:
        Keys ``choice/<group>``, each overridden key (with the value in ``cfg``; a group
        override is its ``choice/<group>``), ``overrides`` (all of them, sorted, space
        separated; secrets masked), and the config keys of :data:`CONFIG_KEYS` and
        :data:`TRAINER_KEYS` that exist. Values TensorBoard cannot hold (None, lists,
        mappings, NaN) become strings.
    """
    hparams: dict[str, HParamValue] = {}
    groups = {str(group) for group in choices if not _is_hydra_group(str(group))}
    for group in sorted(groups):
        hparams[f"choice/{group}"] = to_hparam_value(choices[group])
    for key in _config_keys(cfg):
        hparams[key] = _config_value(cfg, key)
    shown = []
    for override in overrides:
        key, value, text = _parse_override(override)
        if key in groups:
            shown.append(text)
            continue  # a group's option: already its choice/<group>
        if key in SECRETS:
            hparams[key] = REDACTED
            shown.append(text.split("=", 1)[0] + "=" + REDACTED)
            continue
        hparams[key] = value if value is not None else _config_value(cfg, key)
        shown.append(text)
    hparams["overrides"] = " ".join(sorted(shown))
    return hparams


def to_hparam_value(value: Any) -> HParamValue:
    """``value`` as TensorBoard can hold it: bool, number or string.

    None becomes ``"null"`` (as on the command line), lists and mappings their JSON
    text, NaN and infinities their names (TensorBoard drops non-finite numbers).
    """
    if isinstance(value, DictConfig | ListConfig):
        value = OmegaConf.to_container(value, resolve=False)
    if isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if value is None:
        return "null"
    if isinstance(value, list | tuple | dict):
        try:
            return json.dumps(value, default=str)
        except (TypeError, ValueError):
            return str(value)
    return str(value)


def session_start_summary(
    hparams: Mapping[str, HParamValue], start_time: float | None = None
) -> Summary:
    """The run's HParams row: TensorBoard keeps only the first one a run writes.

    Args:
        hparams: Name -> bool, number or string (see :func:`run_hparams`).
        start_time: Seconds since the epoch; now by default.

    Raises:
        TypeError: A value is not a bool, number or string (the key is named).
    """
    info = plugin_data_pb2.SessionStartInfo(
        start_time_secs=time.time() if start_time is None else start_time
    )
    for name, value in hparams.items():
        slot = info.hparams[name]
        if isinstance(value, bool):
            slot.bool_value = value
        elif isinstance(value, int | float):
            slot.number_value = float(value)
        elif isinstance(value, str):
            slot.string_value = value
        else:
            raise TypeError(
                f"hparam {name!r}={value!r}: TensorBoard takes a bool, number or string "
                "(to_hparam_value converts other values)"
            )
    data = plugin_data_pb2.HParamsPluginData(session_start_info=info)
    return _summary(metadata.SESSION_START_INFO_TAG, data)


def session_end_summary(outcome: str, end_time: float | None = None) -> Summary:
    """The run's outcome as the status of its HParams row (see :data:`OUTCOME_STATUS`).

    Raises:
        ValueError: ``outcome`` is not one of :data:`OUTCOME_STATUS`.
    """
    if outcome not in OUTCOME_STATUS:
        raise ValueError(f"outcome={outcome!r}: use one of {', '.join(OUTCOME_STATUS)}")
    info = plugin_data_pb2.SessionEndInfo(
        status=OUTCOME_STATUS[outcome],
        end_time_secs=time.time() if end_time is None else end_time,
    )
    data = plugin_data_pb2.HParamsPluginData(session_end_info=info)
    return _summary(metadata.SESSION_END_INFO_TAG, data)


def _summary(tag: str, data: plugin_data_pb2.HParamsPluginData) -> Summary:
    return Summary(
        value=[
            Summary.Value(
                tag=tag,
                metadata=metadata.create_summary_metadata(data),
                tensor=metadata.NULL_TENSOR,
            )
        ]
    )


def _is_hydra_group(group: str) -> bool:
    return group == "hydra" or group.startswith("hydra/")


def _config_keys(cfg: DictConfig) -> list[str]:
    """The :data:`CONFIG_KEYS` and trainer settings this config has."""
    keys = [key for key in CONFIG_KEYS if _has_key(cfg, key)]
    for group in TRAINER_GROUPS:
        node = _node(cfg, group)
        if not isinstance(node, DictConfig):
            continue
        for name in [str(name) for name in node]:
            trainer = _node(cfg, f"{group}.{name}")
            if isinstance(trainer, DictConfig):  # not a trainer switched off with null
                keys.extend(f"{group}.{name}.{key}" for key in TRAINER_KEYS if key in trainer)
    return keys


def _has_key(cfg: DictConfig, key: str) -> bool:
    parent, _, last = key.rpartition(".")
    node = _node(cfg, parent) if parent else cfg
    return isinstance(node, DictConfig) and last in node


def _node(cfg: DictConfig, key: str) -> Any:
    """The node at ``key`` (None where there is none), without resolving its value."""
    try:
        return OmegaConf.select(cfg, key, throw_on_resolution_failure=False)
    except Exception:  # a malformed key or a node OmegaConf refuses to walk
        return None


def _config_value(cfg: DictConfig, key: str) -> HParamValue:
    """The value at ``key``, resolved where that is possible, else its ``${...}`` text."""
    try:
        return to_hparam_value(OmegaConf.select(cfg, key))
    except Exception:  # e.g. ${hydra:...} outside a Hydra run, a missing variable
        parent, _, last = key.rpartition(".")
        node = _node(cfg, parent) if parent else cfg
        if isinstance(node, DictConfig) and last in node:
            raw = OmegaConf.to_container(node, resolve=False)
            if isinstance(raw, dict):
                return to_hparam_value(raw.get(last))
        return "null"


def _parse_override(override: str) -> tuple[str, HParamValue | None, str]:
    """(key or group, value to record or None to read it from the config, text).

    Hydra's own parser reads the line; the key has no ``+``/``++``/``~`` and a package
    override keeps its ``@package``. A deletion (``~key``) records ``"deleted"``.
    """
    text = override.strip()
    try:
        (parsed,) = OverridesParser.create().parse_overrides([text])
    except (HydraException, ValueError):
        key = text.split("=", 1)[0].lstrip("+~")
        return key, None, text
    key = parsed.key_or_group + (f"@{parsed.package}" if parsed.package else "")
    if parsed.type == OverrideType.DEL:
        return key, "deleted", text
    return key, None, text
