"""The three threads together, built from real parts, run by MainThread on this thread."""

from __future__ import annotations

import json
import logging
import threading
import time
import types
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
import torch
from runtime_parts import BrightnessTrainer, Runtime, ScriptedWorld, build_runtime, wait_for
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import ami.threads.inference as inference_module
from ami.data import StepCollector
from ami.interaction import Environment, Interaction
from ami.interaction.agents import RandomAgent
from ami.interaction.spaces import Box, Observation, image_space
from ami.metrics import EventWriter
from ami.system import SystemControl, ThreadControl
from ami.threads import InferenceThread, TrainingThread

pytestmark = [pytest.mark.usefixtures("keep_main_thread_name"), pytest.mark.timeout(90)]

DEADLINE = 60.0
"""Seconds a condition may take on a busy machine before the test calls it a deadlock."""


def scalars(log_dir: Path, tag: str) -> list[float]:
    events = EventAccumulator(str(log_dir), size_guidance={"scalars": 0})
    events.Reload()
    return [e.value for e in events.Scalars(tag)]


def run_until(runtime: Runtime, condition: Callable[[], bool], what: str) -> int:
    """Run on this thread until ``condition`` holds, then shut down; the exit code.

    A watcher thread checks the condition and requests the shutdown (bypassing the
    main-thread-only check, as a client request would arrive on the main thread).
    """
    met: list[bool] = []

    def watch() -> None:
        deadline = time.monotonic() + DEADLINE
        while time.monotonic() < deadline:
            if condition():
                met.append(True)
                break
            time.sleep(0.01)
        runtime.main.system.shutdown.__wrapped__(runtime.main.system)  # type: ignore[attr-defined]

    watcher = threading.Thread(target=watch, name="watcher", daemon=True)
    watcher.start()
    code = runtime.main.run()
    watcher.join(DEADLINE)
    assert met, f"timed out waiting until {what}"
    return code


def test_a_run_acts_learns_syncs_and_records(tmp_path: Path) -> None:
    runtime = build_runtime(tmp_path, interval=0.01, max_uptime=None)
    world = runtime.world
    code = run_until(
        runtime, lambda: world.steps > 50 and runtime.trainer.runs >= 2, "it acts and learns"
    )
    assert code == 0
    assert len(world.actions) == world.steps
    assert world.events[0] == ("setup", "inference")
    assert world.events[-1] == ("teardown", "inference")
    runtime_threads = world.thread_names - {"watcher"}  # the test's own thread
    assert runtime_threads == {"main", "inference", "training"}, "exactly three threads"
    assert runtime.models.version == runtime.trainer.runs
    intervals = scalars(tmp_path / "tb" / "inference", "inference/step_interval")
    assert len(intervals) >= world.steps - 2
    assert all(interval > 0 for interval in intervals)
    losses = scalars(tmp_path / "tb" / "training", "training/brightness/loss")
    assert len(losses) == runtime.trainer.global_step
    for thread in (runtime.inference, runtime.training):
        assert not thread.thread.is_alive()


def test_first_training_run_starts_as_soon_as_a_batch_exists(tmp_path: Path) -> None:
    trainer = BrightnessTrainer(batch_size=8, min_new_steps=10_000)
    runtime = build_runtime(tmp_path, trainer=trainer, interval=0.01, max_uptime=None)
    code = run_until(
        runtime, lambda: trainer.runs >= 1 and runtime.world.steps >= 40, "a run and 40 steps"
    )
    assert code == 0
    assert trainer.runs == 1, "one run after the first batch, then wait for 10k new steps"


class SimulatedClock:
    """Time for the inference thread's scheduler that moves only by work and waits.

    Binary fractions keep the arithmetic exact, so "on the grid" means equal.
    """

    def __init__(self) -> None:
        self.now = 1024.0

    def perf_counter(self) -> float:
        return self.now


class SimulatedControl(ThreadControl):
    """A control handle whose idle wait moves the simulated clock instead of sleeping.

    With ``late_wakes``, every fourth wait wakes 1/32 s late, as a busy machine's
    scheduler would.
    """

    LATE = 0.03125

    def __init__(self, clock: SimulatedClock, late_wakes: bool) -> None:
        super().__init__(SystemControl(), "inference")
        self.clock = clock
        self.late_wakes = late_wakes
        self.waits = 0

    def wait(self, timeout: float | None = None) -> bool:
        assert timeout is not None and timeout > 0, "the scheduler waits for a deadline"
        self.waits += 1
        late = self.late_wakes and self.waits % 4 == 0
        self.clock.now += timeout + (self.LATE if late else 0.0)
        return False


class SimulatedWorld(Environment):
    """A world whose steps take ``work(step)`` simulated seconds."""

    def __init__(self, clock: SimulatedClock, work: Callable[[int], float]) -> None:
        self.clock = clock
        self.work = work
        self.step_times: list[float] = []

    def observation_space(self) -> dict[str, Box]:
        return image_space(4, 4)

    def observe(self) -> Observation:
        self.step_times.append(self.clock.now)
        self.clock.now += self.work(len(self.step_times))
        return {"image": torch.zeros(3, 4, 4)}

    def affect(self, action: torch.Tensor) -> None:
        pass

    def metrics(self) -> Mapping[str, float]:
        return {}


def simulate_steps(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    work: Callable[[int], float],
    steps: int,
    late_wakes: bool = False,
    time_scale: float = 1.0,
) -> tuple[list[float], InferenceThread]:
    """Run the inference thread's scheduler on this thread, on simulated time."""
    clock = SimulatedClock()
    monkeypatch.setattr(
        inference_module, "time", types.SimpleNamespace(perf_counter=clock.perf_counter)
    )
    world = SimulatedWorld(clock, work)
    collector = StepCollector()
    agent = RandomAgent([2])
    agent.bind({}, collector)
    thread = InferenceThread(
        Interaction(world, agent), collector, tmp_path, interval=0.25, time_scale=time_scale
    )
    thread.bind(SimulatedControl(clock, late_wakes), lambda: None)
    thread.metrics = EventWriter(tmp_path)
    while len(world.step_times) < steps:
        thread.on_tick()
    thread.metrics.close()
    return world.step_times, thread


def test_steps_keep_absolute_deadlines_despite_jittery_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Work of 3/4 of the interval on every third step, 1/16 otherwise; some waits wake late.
    times, thread = simulate_steps(
        tmp_path,
        monkeypatch,
        lambda step: 0.1875 if step % 3 == 0 else 0.015625,
        steps=60,
        late_wakes=True,
    )
    # Every step starts on the grid start + k * interval, or as late as its own wait woke:
    # a late start does not shift the later ones, so no drift accumulates.
    lateness = [t - (times[0] + k * 0.25) for k, t in enumerate(times)]
    assert set(lateness) == {0.0, SimulatedControl.LATE}
    assert thread.overruns == 0


def test_a_step_longer_than_the_interval_skips_deadlines_without_bursting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Step 10 takes 3.5 intervals: it misses the deadlines of slots 10, 11 and 12.
    times, thread = simulate_steps(
        tmp_path, monkeypatch, lambda step: 0.875 if step == 10 else 0.0, 20
    )
    slots = [(t - times[0]) / 0.25 for t in times]
    assert slots == [*range(10), *range(13, 23)], "the next step takes the next free slot"
    assert thread.overruns == 3


def test_a_time_scale_runs_the_steps_of_world_time_faster_on_the_same_grid(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    times, thread = simulate_steps(
        tmp_path, monkeypatch, lambda step: 0.5 if step == 10 else 0.0, 20, time_scale=4.0
    )
    # 0.25 world seconds per step at 4x: a step every 1/16 wall second; the long step 10
    # (8 of those periods) skips deadlines as at any speed, on the scaled grid.
    slots = [(t - times[0]) / 0.0625 for t in times]
    assert slots == [*range(10), *range(18, 28)]
    assert thread.overruns == 8
    assert thread.world_seconds == 20 * 0.25, "the world's clock counts its steps"
    assert thread.status()["time_scale"] == 4.0


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
    with caplog.at_level(logging.INFO):
        assert runtime.main.run() == 1
    assert "max_uptime" not in caplog.text, "the failure stopped the run, not max_uptime"
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
        deadline = time.monotonic() + DEADLINE
        while time.monotonic() < deadline:
            api = self.runtime.main.api
            if api is not None and api._server is not None and self.runtime.main._started_at:
                return api.url
            time.sleep(0.01)
        raise TimeoutError("API did not open")

    def call(self, method: str, path: str) -> tuple[int, dict[str, Any], dict[str, str]]:
        request = urllib.request.Request(
            self.url() + path,
            method=method,
            data=b"" if method == "POST" else None,
            headers={"Content-Type": "application/json"} if method == "POST" else {},
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


def test_web_api_pauses_mid_training_resumes_and_shuts_down(tmp_path: Path) -> None:
    trainer = BrightnessTrainer(step_seconds=0.02, steps_per_run=500, min_new_steps=1)
    runtime = build_runtime(tmp_path, trainer=trainer, api=True, max_uptime=None)

    def script(client: Client, results: list[Any]) -> None:
        status, body, headers = client.call("GET", "/api/status")
        assert status == 200 and body["status"] == "active"
        assert headers["Content-Type"] == "application/json"
        wait_for(lambda: trainer.global_step >= 3, "in the middle of a 500-step run")
        status, body, _ = client.call("POST", "/api/pause")
        if not body["acknowledged"]:  # a busy machine: the reply came before both parked
            wait_for(lambda: client.call("GET", "/api/status")[1]["status"] == "paused", "paused")
            body = client.call("GET", "/api/status")[1]
        assert status == 200 and body["status"] == "paused"
        assert all(t["parked"] and t["state"] == "parked" for t in body["threads"].values())
        steps, optimizer_steps = runtime.world.steps, trainer.global_step
        time.sleep(0.2)
        assert (runtime.world.steps, trainer.global_step) == (steps, optimizer_steps)
        status, body, _ = client.call("POST", "/api/resume")
        assert status == 200 and body["status"] in ("resuming", "active")
        wait_for(lambda: runtime.main.system.state.value == "active", "both threads left the park")
        wait_for(
            lambda: runtime.world.steps > steps and trainer.global_step > optimizer_steps,
            "both threads work again",
        )
        status, body, _ = client.call("POST", "/api/shutdown")
        assert status == 200 and body["status"] == "stopping", "not stopped before it is"

    code, _ = run_with_client(runtime, script)
    assert code == 0
    assert runtime.main.status()["status"] == "stopped"
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
