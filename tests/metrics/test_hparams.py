import math
from pathlib import Path
from typing import Any

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf
from tensorboard.backend.event_processing.plugin_event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import api_pb2, metadata
from tensorboard.plugins.hparams import plugin_data_pb2 as hp_data

import ami.hydra_setup  # noqa: F401  (registers the launch schema)
from ami.metrics import EventWriter, run_hparams
from ami.metrics.hparams import session_start_summary, to_hparam_value

CONF = Path(__file__).resolve().parents[2] / "conf"


def composed(*overrides: str) -> tuple[DictConfig, dict[str, Any], list[str]]:
    """(config, group choices, overrides) as a Hydra run would pass them."""
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        with_hydra = compose("launch", overrides=list(overrides), return_hydra_config=True)
        cfg = compose("launch", overrides=list(overrides))
    choices = dict(with_hydra.hydra.runtime.choices)
    return cfg, choices, list(with_hydra.hydra.overrides.task)


def test_a_run_records_its_group_choices_overrides_and_key_numbers() -> None:
    cfg, choices, overrides = composed(
        "agent=random", "model.trainers.dynamics.lr=3e-4", "max_uptime=60", "seed=3"
    )
    hparams = run_hparams(cfg, choices, overrides)
    assert hparams["choice/agent"] == "random"
    assert hparams["choice/model"] == "world_model"
    assert hparams["choice/debug"] == "null", "a group left empty"
    assert not any(key.startswith("choice/hydra") for key in hparams), "Hydra's own groups"
    assert hparams["model.trainers.dynamics.lr"] == pytest.approx(3e-4), "a number, not text"
    assert hparams["model.trainers.representation.lr"] == pytest.approx(1e-3)
    assert hparams["model.trainers.dynamics.batch_size"] == 16
    assert hparams["max_uptime"] == 60
    assert hparams["seed"] == 3
    assert hparams["model.size"] == "small"
    assert hparams["buffer.capacity"] == 4096
    assert hparams["threads.inference.interval"] == pytest.approx(0.1)
    assert hparams["threads.training.torch_threads"] == "null"
    assert "agent" not in hparams, "a group override is its choice/<group>"
    assert not any(key.startswith("agent.trainers.") for key in hparams), "random trains none"
    assert hparams["overrides"] == (
        "agent=random max_uptime=60 model.trainers.dynamics.lr=3e-4 seed=3"
    )
    for value in hparams.values():
        assert isinstance(value, bool | int | float | str)


def test_the_curiosity_agent_adds_its_trainers_settings() -> None:
    hparams = run_hparams(*composed())
    assert hparams["agent.trainers.policy.lr"] == pytest.approx(3e-4)
    assert hparams["agent.trainers.policy.minibatch_size"] == 32
    assert hparams["agent.trainers.policy.rollout_length"] == 128
    assert hparams["overrides"] == ""


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (["model.trainers.dynamics.lr=1e-3"], ["model.trainers.dynamics.lr=3e-4"]),
        (["max_uptime=60"], ["max_uptime=null"]),
        (["threads.training.torch_threads=2"], ["threads.training.torch_threads=null"]),
        (["buffer=random", "seed=1"], ["buffer=random", "seed=2"]),
    ],
)
def test_jobs_of_a_sweep_declare_the_same_hparam_keys(first: list[str], second: list[str]) -> None:
    """Tensorboard issue #3371: keys follow the config's structure, never its values."""
    assert run_hparams(*composed(*first)).keys() == run_hparams(*composed(*second)).keys()


def test_a_command_line_token_never_reaches_tensorboard() -> None:
    token = "s3cret-token-0123456789"
    cfg, choices, overrides = composed(f"web_api.token={token}")
    hparams = run_hparams(cfg, choices, overrides)
    assert hparams["web_api.token"] == "<redacted>"
    assert "web_api.token=<redacted>" in str(hparams["overrides"])
    assert not any(token in str(value) for value in hparams.values())


def test_new_keys_and_deletions_on_the_command_line_are_recorded() -> None:
    cfg, choices, overrides = composed("+interaction/wrappers=record", "++extra.note=hello")
    hparams = run_hparams(cfg, choices, ["~resume_from", *overrides])
    assert hparams["choice/interaction/wrappers"] == "record"
    assert hparams["extra.note"] == "hello"
    assert hparams["resume_from"] == "deleted"
    assert hparams["overrides"] == "++extra.note=hello +interaction/wrappers=record ~resume_from"


def test_an_interpolation_that_cannot_resolve_is_recorded_as_written() -> None:
    cfg = OmegaConf.create({"seed": 0, "task_name": "${oc.env:AMI_TEST_SURELY_UNSET}"})
    hparams = run_hparams(cfg, {}, [])
    assert hparams == {"seed": 0, "task_name": "${oc.env:AMI_TEST_SURELY_UNSET}", "overrides": ""}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, "null"),
        (True, True),
        (3, 3),
        (0.5, 0.5),
        ("x", "x"),
        ([3, 3, 2], "[3, 3, 2]"),
        (OmegaConf.create({"a": [1]}), '{"a": [1]}'),
        (math.nan, "nan"),
        (math.inf, "inf"),
        (Path("a/b"), "a/b"),
    ],
)
def test_values_tensorboard_cannot_hold_become_text(value: Any, expected: Any) -> None:
    converted = to_hparam_value(value)
    assert converted == expected
    assert type(converted) is type(expected)


def read_session(log_dir: Path) -> tuple[hp_data.SessionStartInfo, hp_data.SessionEndInfo | None]:
    """The session infos as TensorBoard's (Python) loader keeps them."""
    accumulator = EventAccumulator(str(log_dir))
    accumulator.Reload()
    contents = accumulator.PluginTagToContent(metadata.PLUGIN_NAME)
    start = metadata.parse_session_start_info_plugin_data(contents[metadata.SESSION_START_INFO_TAG])
    end = None
    if metadata.SESSION_END_INFO_TAG in contents:
        end = metadata.parse_session_end_info_plugin_data(contents[metadata.SESSION_END_INFO_TAG])
    return start, end


@pytest.mark.parametrize(
    ("outcome", "status"),
    [
        ("completed", api_pb2.STATUS_SUCCESS),
        ("failed", api_pb2.STATUS_FAILURE),
        ("interrupted", api_pb2.STATUS_UNKNOWN),
    ],
)
def test_the_hparams_and_the_outcome_reach_tensorboards_reader(
    tmp_path: Path, outcome: str, status: int
) -> None:
    writer = EventWriter(tmp_path, suffix="main")
    writer.hparams({"lr": 1e-3, "choice/agent": "random", "normalize": True, "batch_size": 16})
    start, end = read_session(tmp_path)
    assert end is None, "a run still going has no end info (status Unknown, no outcome)"
    writer.hparams_end(outcome)
    writer.close()
    start, end = read_session(tmp_path)
    assert start.hparams["lr"].number_value == pytest.approx(1e-3)
    assert start.hparams["choice/agent"].string_value == "random"
    assert start.hparams["normalize"].bool_value is True
    assert start.hparams["batch_size"].number_value == 16
    assert start.start_time_secs > 0
    assert end is not None
    assert end.status == status
    assert end.end_time_secs >= start.start_time_secs


def test_hparams_are_written_once_and_the_outcome_once_after_them(tmp_path: Path) -> None:
    writer = EventWriter(tmp_path)
    with pytest.raises(RuntimeError, match=r"hparams_end\('completed'\) before hparams\(\)"):
        writer.hparams_end("completed")
    writer.hparams({"lr": 1e-3})
    with pytest.raises(RuntimeError, match="written once per run"):
        writer.hparams({"lr": 3e-4})
    with pytest.raises(ValueError, match="outcome='done': use one of completed, failed"):
        writer.hparams_end("done")
    writer.hparams_end("failed")
    with pytest.raises(RuntimeError, match="outcome is written already"):
        writer.hparams_end("completed")
    writer.close()
    start, end = read_session(tmp_path)
    assert start.hparams["lr"].number_value == pytest.approx(1e-3)
    assert end is not None and end.status == api_pb2.STATUS_FAILURE


def test_a_value_tensorboard_cannot_hold_is_refused_naming_its_key() -> None:
    with pytest.raises(TypeError, match=r"hparam 'size'=None: TensorBoard takes a bool"):
        session_start_summary({"lr": 1e-3, "size": None})  # type: ignore[dict-item]
