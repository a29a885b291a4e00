"""A real TensorBoard server (in-process, 127.0.0.1, port 0) reads runs written by our code.

The tests run under both loaders: ``--load_fast=auto`` (the default a user gets: the
Rust data server where it is installed) and ``--load_fast=false`` (the Python one). The
requests are those the HParams and Custom Scalars tabs send. Servers load once: the
Python loader's reloading thread never stops, and other tests count this process's
threads; only the Rust data server (a child process) watches a run live.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hydra import compose, initialize_config_dir
from tensorboard import program
from tensorboard.data import server_ingester

import ami.hydra_setup  # noqa: F401  (registers the launch schema)
from ami.metrics import EventWriter, layout_summary, run_hparams
from ami.metrics.hparams import session_start_summary

pytestmark = pytest.mark.slow

CONF = Path(__file__).resolve().parents[2] / "conf"
STATUSES = ["STATUS_UNKNOWN", "STATUS_SUCCESS", "STATUS_FAILURE", "STATUS_RUNNING"]
OUTCOME_CODES = {"completed": 0, "interrupted": 1, "failed": 2}
LOADERS = ["auto", "false"]


@contextlib.contextmanager
def tensorboard(logdir: Path, load_fast: str, reload_interval: int = 0) -> Iterator[str]:
    """A TensorBoard server on a free loopback port; yields its URL, then stops it.

    ``reload_interval=0`` reads the log directory once.
    """
    threads_before = set(threading.enumerate())
    board = program.TensorBoard()
    board.configure(
        logdir=str(logdir),
        host="127.0.0.1",
        port=0,
        load_fast=load_fast,
        reload_interval=reload_interval,
    )
    # launch() would leave the server running until the process ends: serve it here.
    server = board._make_server()
    thread = threading.Thread(target=server.serve_forever, name="tensorboard", daemon=True)
    thread.start()
    try:
        yield server.get_url().rstrip("/")
    finally:
        server.shutdown()
        server.server_close()
        thread.join(30)
        stdin = getattr(getattr(board, "_ingester", None), "_stdin_handle", None)
        if stdin is not None:
            stdin.close()  # the Rust data server exits when its stdin closes
        # Other tests count this process's threads: none of the server's may outlive it.
        wait_for(
            lambda: {t.name for t in set(threading.enumerate()) - threads_before if t.is_alive()},
            lambda left: not left,
            "its threads end",
        )


def get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.loads(response.read())


def post(url: str, body: dict[str, Any]) -> Any:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def wait_for(read: Callable[[], Any], ready: Callable[[Any], bool], what: str) -> Any:
    """``read()`` once ``ready`` holds for it; a generous deadline for a busy machine."""
    deadline = time.monotonic() + 60
    while True:
        value = read()
        if ready(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"TensorBoard never showed {what}; last answer: {value}")
        time.sleep(0.2)


def experiment(url: str) -> Any:
    """What the HParams tab asks first: its columns."""
    return post(f"{url}/data/plugin/hparams/experiment", {"experimentName": ""})


def session_groups(url: str, statuses: list[str] = STATUSES) -> Any:
    """The HParams table's rows, asked for every column as the tab does."""
    columns = experiment(url)
    params = [{"hparam": info["name"], "includeInResult": True} for info in columns["hparamInfos"]]
    params += [
        {"metric": info["name"], "includeInResult": True} for info in columns.get("metricInfos", [])
    ]
    body = {
        "experimentName": "",
        "allowedStatuses": statuses,
        "colParams": params,
        "startIndex": 0,
        "sliceSize": 100,
    }
    return post(f"{url}/data/plugin/hparams/session_groups", body)


def composed(*overrides: str) -> tuple[Any, dict[str, Any], list[str]]:
    """(config, group choices, overrides) as a Hydra run would pass them."""
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        with_hydra = compose("launch", overrides=list(overrides), return_hydra_config=True)
        cfg = compose("launch", overrides=list(overrides))
    return cfg, dict(with_hydra.hydra.runtime.choices), list(with_hydra.hydra.overrides.task)


def write_run(run_dir: Path, overrides: list[str], final_loss: float, outcome: str) -> list[str]:
    """A finished run's ``tensorboard/`` as the three threads write it; its trainers."""
    cfg, choices, task = composed(*overrides)
    trainers = [*cfg.model.trainers, *cfg.agent.trainers]
    folder = run_dir / "tensorboard"
    main = EventWriter(folder, suffix="main")
    inference = EventWriter(folder, suffix="inference")
    training = EventWriter(folder, suffix="training")
    main.hparams(run_hparams(cfg, choices, task))
    main.summary(layout_summary(trainers))
    for step in range(1, 4):
        inference.scalars({"inference/step_interval": 0.1, "inference/overruns": 0.0}, step)
        training.scalars(
            {f"training/{name}/loss": final_loss + 1 / step for name in trainers}, step
        )
    main.scalars(
        {
            **{f"training/{name}/loss_final": final_loss + i for i, name in enumerate(trainers)},
            "run/outcome_code": OUTCOME_CODES[outcome],
        },
        step=3,
    )
    main.hparams_end(outcome)
    for writer in (main, inference, training):
        writer.close()
    return trainers


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A two-job sweep over the learning rate and the agent: their trainers differ."""
    root = tmp_path_factory.mktemp("multirun")
    write_run(root / "0", ["agent=random", "model.trainers.dynamics.lr=1e-3"], 0.5, "completed")
    write_run(root / "1", ["agent=curiosity", "model.trainers.dynamics.lr=3e-4"], 0.8, "failed")
    return root


@pytest.fixture(scope="module", params=LOADERS, ids=[f"load_fast={mode}" for mode in LOADERS])
def board(sweep: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    with tensorboard(sweep, request.param) as url:
        wait_for(lambda: session_groups(url), lambda got: got.get("totalSize") == 2, "2 rows")
        yield url


def by_agent(groups: Any) -> dict[str, Any]:
    return {group["hparams"]["choice/agent"]: group for group in groups["sessionGroups"]}


def metric_values(group: Any) -> dict[str, float]:
    return {value["name"]["tag"]: value["value"] for value in group["metricValues"]}


def test_each_job_of_a_sweep_is_one_row_with_its_settings_metrics_and_outcome(board: str) -> None:
    assert get(f"{board}/data/runs") == ["0/tensorboard", "1/tensorboard"], "no extra runs"
    groups = session_groups(board)
    assert groups["totalSize"] == 2
    rows = by_agent(groups)
    assert set(rows) == {"random", "curiosity"}
    random, curiosity = rows["random"], rows["curiosity"]
    assert random["hparams"]["model.trainers.dynamics.lr"] == pytest.approx(1e-3)
    assert curiosity["hparams"]["model.trainers.dynamics.lr"] == pytest.approx(3e-4)
    assert random["hparams"]["overrides"] == "agent=random model.trainers.dynamics.lr=1e-3"

    metrics = metric_values(random)
    assert metrics["training/dynamics/loss_final"] == pytest.approx(1.5)
    assert metrics["run/outcome_code"] == 0
    assert "training/policy/loss_final" not in metrics, "the random agent trains no policy"
    metrics = metric_values(curiosity)
    assert metrics["training/dynamics/loss_final"] == pytest.approx(1.8)
    assert metrics["training/policy/loss_final"] == pytest.approx(2.8), "its own trainer too"
    assert metrics["run/outcome_code"] == 2

    (session,) = random["sessions"]
    assert session["status"] == "STATUS_SUCCESS"
    (session,) = curiosity["sessions"]
    assert session["status"] == "STATUS_FAILURE"


def test_the_columns_are_the_union_of_every_jobs_hparams_and_metrics(board: str) -> None:
    """Tensorboard issue #3371: no job's columns hide another's."""
    columns = experiment(board)
    hparams = {info["name"]: info for info in columns["hparamInfos"]}
    assert hparams["model.trainers.dynamics.lr"]["type"] == "DATA_TYPE_FLOAT64"
    assert hparams["model.trainers.dynamics.lr"]["differs"] is True
    assert "agent.trainers.policy.lr" in hparams, "only the curiosity job has it"
    assert set(hparams["choice/agent"]["domainDiscrete"]) == {"random", "curiosity"}
    assert "outcome" not in hparams, "the outcome is the status and run/outcome_code"
    metrics = {info["name"]["tag"] for info in columns["metricInfos"]}
    assert {"training/dynamics/loss_final", "training/policy/loss_final"} <= metrics
    assert "run/outcome_code" in metrics


def test_the_status_filter_hides_failed_jobs(board: str) -> None:
    groups = session_groups(board, statuses=["STATUS_SUCCESS"])
    assert [group["hparams"]["choice/agent"] for group in groups["sessionGroups"]] == ["random"]


def test_the_custom_scalars_page_merges_the_jobs_layouts_in_order(board: str) -> None:
    layout = get(f"{board}/data/plugin/custom_scalars/layout")
    titles = [category["title"] for category in layout["category"]]
    assert titles == [
        "losses",
        "agent timing",
        "coverage and reward",
        "resources",
        "training details",
        "model age",
        "buffers",
    ]
    losses = [chart["title"] for chart in layout["category"][0]["chart"]]
    assert losses.count("all trainers' losses") == 1, "identical charts merge"
    assert {"representation loss", "dynamics loss", "policy loss"} <= set(losses)
    (all_losses,) = layout["category"][0]["chart"][0]["multiline"]["tag"]
    query = urllib.parse.urlencode({"run": "1/tensorboard", "tag": all_losses})
    found = get(f"{board}/data/plugin/custom_scalars/scalars?{query}")
    assert found["regex_valid"] is True
    assert set(found["tag_to_events"]) == {
        "training/representation/loss",
        "training/dynamics/loss",
        "training/policy/loss",
    }


@pytest.mark.parametrize("load_fast", LOADERS)
def test_tensorboard_keeps_a_runs_first_hparams_and_ignores_later_ones(
    tmp_path: Path, load_fast: str
) -> None:
    """Why the outcome is no hparam: a second set of hparams is never shown."""
    writer = EventWriter(tmp_path / "run" / "tensorboard", suffix="main")
    writer.hparams({"lr": 1e-3})
    writer.summary(session_start_summary({"lr": 3e-4, "outcome": "completed"}))
    writer.close()
    with tensorboard(tmp_path, load_fast) as url:
        groups = wait_for(
            lambda: session_groups(url), lambda got: got.get("totalSize") == 1, "the row"
        )
    (group,) = groups["sessionGroups"]
    assert group["hparams"] == {"lr": pytest.approx(1e-3)}, "the first set, alone"
    (session,) = group["sessions"]
    assert session.get("status", "STATUS_UNKNOWN") == "STATUS_UNKNOWN", "no end info yet"


def test_an_open_tensorboard_shows_the_outcome_when_the_run_ends(tmp_path: Path) -> None:
    try:
        server_ingester.get_server_binary()
    except server_ingester.NoDataServerError:
        pytest.skip("no Rust data server here: load_fast=auto would be the Python loader")
    writer = EventWriter(tmp_path / "run" / "tensorboard", suffix="main")
    writer.hparams({"lr": 1e-3})
    with tensorboard(tmp_path, "auto", reload_interval=1) as url:
        groups = wait_for(
            lambda: session_groups(url), lambda got: got.get("totalSize") == 1, "the row"
        )
        (session,) = groups["sessionGroups"][0]["sessions"]
        assert session.get("status", "STATUS_UNKNOWN") == "STATUS_UNKNOWN", "still running"
        writer.hparams_end("completed")
        writer.close()
        wait_for(
            lambda: session_groups(url)["sessionGroups"][0]["sessions"][0].get("status"),
            lambda status: status == "STATUS_SUCCESS",
            "the outcome in an open TensorBoard",
        )
