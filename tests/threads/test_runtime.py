"""The three threads together, built from real parts, run by MainThread on this thread."""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import torch
from runtime_parts import BrightnessTrainer, ScriptedWorld, build_runtime
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from ami.data import StepCollector
from ami.interaction import Interaction
from ami.interaction.agents import RandomAgent
from ami.threads import InferenceThread, TrainingThread

pytestmark = [pytest.mark.usefixtures("keep_main_thread_name"), pytest.mark.timeout(60)]


def scalars(log_dir: Path, tag: str) -> list[float]:
    events = EventAccumulator(str(log_dir), size_guidance={"scalars": 0})
    events.Reload()
    return [e.value for e in events.Scalars(tag)]


def test_a_run_acts_learns_syncs_and_records(tmp_path: Path) -> None:
    runtime = build_runtime(tmp_path, interval=0.01, max_uptime=1.5)
    assert runtime.main.run() == 0
    world = runtime.world
    assert world.steps > 50
    assert len(world.actions) == world.steps
    assert world.events[0] == ("setup", "inference")
    assert world.events[-1] == ("teardown", "inference")
    assert world.thread_names == {"main", "inference", "training"}, "exactly three threads"
    assert runtime.trainer.runs >= 2
    assert runtime.models["brightness"].syncs == runtime.trainer.runs
    intervals = scalars(tmp_path / "tb" / "inference", "inference/step_interval")
    assert len(intervals) >= world.steps - 2
    assert sum(intervals) / len(intervals) == pytest.approx(0.01, rel=0.5)
    losses = scalars(tmp_path / "tb" / "training", "training/brightness/loss")
    assert len(losses) == runtime.trainer.global_step
    for thread in (runtime.inference, runtime.training):
        assert not thread.thread.is_alive()


def test_first_training_run_starts_as_soon_as_a_batch_exists(tmp_path: Path) -> None:
    trainer = BrightnessTrainer(batch_size=8, min_new_steps=10_000)
    runtime = build_runtime(tmp_path, trainer=trainer, interval=0.01, max_uptime=0.5)
    assert runtime.main.run() == 0
    assert trainer.runs == 1, "one run after the first batch, then wait for 10k new steps"


def test_steps_keep_absolute_deadlines_despite_jittery_work(tmp_path: Path) -> None:
    interval = 0.02
    world = ScriptedWorld(work=lambda step: 0.012 if step % 3 == 0 else 0.001)
    runtime = build_runtime(tmp_path, world=world, interval=interval, max_uptime=1.2)
    assert runtime.main.run() == 0
    times = world.step_times
    assert len(times) >= 40
    # Every step starts on the grid start + k * interval (k may skip if a step
    # overran): late starts do not shift the later ones, so no drift accumulates.
    slots = [(t - times[0]) / interval for t in times]
    phases = [abs(slot - round(slot)) for slot in slots]
    assert max(phases) < 0.3, phases
    assert all(b > a for a, b in zip(map(round, slots), map(round, slots[1:])))


def test_a_step_longer_than_the_interval_skips_deadlines_without_bursting(tmp_path: Path) -> None:
    interval = 0.02
    world = ScriptedWorld(work=lambda step: 0.07 if step == 10 else 0.0)
    runtime = build_runtime(tmp_path, world=world, interval=interval, max_uptime=0.8)
    assert runtime.main.run() == 0
    assert runtime.inference.overruns >= 3  # a 70 ms step misses three 20 ms deadlines
    gaps = [b - a for a, b in zip(world.step_times, world.step_times[1:])]
    assert min(gaps[10:]) > interval * 0.5, "no burst of catch-up steps after the slow one"


class CountingTrainingThread(TrainingThread):
    ticks = 0

    def on_tick(self) -> None:
        type(self).ticks += 1
        super().on_tick()


def test_idle_training_thread_waits_instead_of_spinning(tmp_path: Path) -> None:
    CountingTrainingThread.ticks = 0
    trainer = BrightnessTrainer(batch_size=100_000)  # never ready
    runtime = build_runtime(
        tmp_path,
        trainer=trainer,
        interval=0.05,
        max_uptime=1.0,
        training_cls=CountingTrainingThread,
    )
    assert runtime.main.run() == 0
    steps = runtime.world.steps
    assert trainer.runs == 0
    # Woken once per new step (plus start and stop), never polling in between.
    assert CountingTrainingThread.ticks <= steps + 3


def test_each_thread_runs_torch_on_its_own_cpu_thread_count(tmp_path: Path) -> None:
    seen: dict[str, set[int]] = {"inference": set(), "training": set()}

    def record(thread: str) -> None:
        seen[thread].add(torch.get_num_threads())

    class RecordingTrainingThread(TrainingThread):
        def on_tick(self) -> None:
            record("training")
            super().on_tick()

    world = ScriptedWorld(work=lambda step: record("inference") or 0.0)
    main_threads = torch.get_num_threads()
    torch.set_num_threads(3)
    try:
        runtime = build_runtime(
            tmp_path, world=world, max_uptime=0.5, training_cls=RecordingTrainingThread
        )
        runtime.inference.torch_threads = 1
        assert runtime.training.torch_threads == 3, "None takes the process's count"
        runtime.training.torch_threads = 2
        assert runtime.main.run() == 0
        assert seen == {"inference": {1}, "training": {2}}
        assert torch.get_num_threads() == 3, "the main thread keeps its own"
    finally:
        torch.set_num_threads(main_threads)


def test_a_torch_thread_count_below_one_is_refused_naming_the_key(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"threads\.inference\.torch_threads=0"):
        InferenceThread(
            Interaction(ScriptedWorld(), RandomAgent([2])),
            StepCollector(),
            tmp_path,
            torch_threads=0,
        )


@pytest.mark.parametrize("where", ["inference", "training", "setup"])
def test_a_failure_in_any_thread_stops_all_and_exits_nonzero(
    tmp_path: Path, where: str, caplog: pytest.LogCaptureFixture
) -> None:
    world = ScriptedWorld(
        fail_at_step=20 if where == "inference" else None, fail_in_setup=where == "setup"
    )
    trainer = BrightnessTrainer(fail_at_run=2 if where == "training" else None)
    runtime = build_runtime(tmp_path, world=world, trainer=trainer, max_uptime=30.0)
    started = time.monotonic()
    with caplog.at_level(logging.ERROR):
        assert runtime.main.run() == 1
    assert time.monotonic() - started < 10, "stopped promptly, not at max_uptime"
    failed = "inference" if where == "setup" else where
    records = [r for r in caplog.records if f"thread {failed} failed" in r.getMessage()]
    assert records, caplog.text
    assert records[0].exc_info is not None, "the traceback is logged"
    assert records[0].threadName == failed
    assert ("teardown", "inference") in world.events, "the world is always released"
    for thread in (runtime.inference, runtime.training):
        assert not thread.thread.is_alive()


class Client:
    """HTTP calls to the control API from a separate thread (main is busy serving)."""

    def __init__(self, runtime: Any) -> None:
        self.runtime = runtime

    def url(self) -> str:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            api = self.runtime.main.api
            if api is not None and api._server is not None and self.runtime.main._started_at:
                return api.url
            time.sleep(0.01)
        raise TimeoutError("API did not open")

    def call(self, method: str, path: str) -> tuple[int, dict[str, Any], dict[str, str]]:
        request = urllib.request.Request(
            self.url() + path, method=method, data=b"" if method == "POST" else None
        )
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return response.status, json.loads(response.read()), dict(response.headers)
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read()), dict(error.headers)


def run_with_client(runtime: Any, script: Any) -> tuple[int, list[Any]]:
    results: list[Any] = []
    errors: list[BaseException] = []

    def client() -> None:
        try:
            script(Client(runtime), results)
        except BaseException as error:
            errors.append(error)
            runtime.main.system.shutdown.__wrapped__(runtime.main.system)

    thread = threading.Thread(target=client, name="client", daemon=True)
    thread.start()
    code = runtime.main.run()
    thread.join(10)
    if errors:
        raise errors[0]
    return code, results


def test_web_api_pauses_mid_training_within_100ms_resumes_and_shuts_down(tmp_path: Path) -> None:
    trainer = BrightnessTrainer(step_seconds=0.02, steps_per_run=500, min_new_steps=1)
    runtime = build_runtime(tmp_path, trainer=trainer, api=True, max_uptime=30.0)

    def script(client: Client, results: list[Any]) -> None:
        status, body, headers = client.call("GET", "/api/status")
        assert status == 200 and body["status"] == "active"
        assert headers["Content-Type"] == "application/json"
        while trainer.global_step < 3:  # in the middle of a 500-step run
            time.sleep(0.01)
        status, body, _ = client.call("POST", "/api/pause")
        results.append(("ack_seconds", body["ack_seconds"]))
        assert status == 200 and body["status"] == "paused" and body["acknowledged"]
        assert all(t["parked"] for t in body["threads"].values())
        steps, optimizer_steps = runtime.world.steps, trainer.global_step
        time.sleep(0.2)
        assert (runtime.world.steps, trainer.global_step) == (steps, optimizer_steps)
        status, body, _ = client.call("POST", "/api/resume")
        assert status == 200 and body["status"] == "active"
        time.sleep(0.2)
        assert runtime.world.steps > steps and trainer.global_step > optimizer_steps
        status, body, _ = client.call("POST", "/api/shutdown")
        assert status == 200 and body["status"] == "stopped"

    code, results = run_with_client(runtime, script)
    assert code == 0
    ((_, ack_seconds),) = results
    # Target 100 ms (one 20 ms optimizer step here); headroom for a loaded CI machine.
    assert ack_seconds < 0.25
    assert ("pause", "inference") in runtime.world.events
    assert ("resume", "inference") in runtime.world.events


def test_web_api_errors_are_json(tmp_path: Path) -> None:
    runtime = build_runtime(tmp_path, api=True, max_uptime=30.0)

    def script(client: Client, results: list[Any]) -> None:
        status, body, _ = client.call("GET", "/api/nothing")
        assert status == 404 and body["error"] == "not found" and "/api/status" in body["routes"]
        status, body, headers = client.call("GET", "/api/pause")
        assert status == 405 and headers["Allow"] == "POST" and body["allowed"] == "POST"
        status, body, headers = client.call("POST", "/api/status")
        assert status == 405 and headers["Allow"] == "GET"
        client.call("POST", "/api/shutdown")

    code, _ = run_with_client(runtime, script)
    assert code == 0
