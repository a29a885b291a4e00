"""Garbage collection off the agent's deadlines: counted everywhere, run in the slack."""

from __future__ import annotations

import gc
import threading
from pathlib import Path

import pytest
import torch
from runtime_parts import ScriptedWorld, build_runtime, run_with, wait_for
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from ami.interaction.spaces import Observation
from ami.threads.garbage import GcWatch, SlackCollector, check_gc_mode


def test_the_watch_counts_collections_of_any_thread() -> None:
    watch = GcWatch()
    watch.take()
    worker = threading.Thread(target=lambda: [gc.collect() for _ in range(3)])
    worker.start()
    worker.join(30)

    assert watch.take() >= 3
    assert watch.take() <= 1  # at most one automatic collection in between


def test_the_watch_leaves_no_callback_that_could_swallow_a_ctrl_c() -> None:
    callbacks = list(gc.callbacks)
    GcWatch().take()

    assert gc.callbacks == callbacks


def test_the_slack_collector_follows_pythons_ratios_of_generations(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    collected: list[int] = []
    monkeypatch.setattr(gc, "collect", lambda generation=2: collected.append(generation) or 0)
    collector = SlackCollector()

    for _ in range(200):
        collector.after_step(seconds_left=0.09, interval=0.1)

    assert collected.count(2) == 2
    assert collected.count(1) == 18
    assert collected.count(0) == 180
    assert collected[99] == 2 and collected[9] == 1


def test_a_step_without_slack_postpones_its_collection_but_not_forever(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    collected: list[int] = []
    monkeypatch.setattr(gc, "collect", lambda generation=2: collected.append(generation) or 0)
    collector = SlackCollector(margin=0.2, patience=3)

    results = [collector.after_step(seconds_left=0.01, interval=0.1) for _ in range(8)]

    assert results == [None, None, None, 0, None, None, None, 0]
    assert collector.after_step(seconds_left=0.05, interval=0.1) == 0


def test_an_unknown_mode_is_refused_naming_the_key_and_the_modes() -> None:
    with pytest.raises(
        ValueError, match=r"threads.gc='sometimes': expected one of auto, inference"
    ):
        check_gc_mode("threads.gc", "sometimes")


class GcRecordingWorld(ScriptedWorld):
    """Notes, at every observation, whether Python would collect by itself."""

    def __init__(self) -> None:
        super().__init__()
        self.automatic: list[bool] = []

    def observe(self) -> Observation:
        self.automatic.append(gc.isenabled())
        return super().observe()


@pytest.mark.usefixtures("keep_main_thread_name")
@pytest.mark.parametrize("mode", ["auto", "inference"])
def test_in_inference_mode_only_the_agent_collects_and_every_collection_is_charted(
    tmp_path: Path, mode: str
) -> None:
    world = GcRecordingWorld()
    runtime = build_runtime(tmp_path, world=world, max_uptime=None, api=True, gc=mode)

    def script(client: object) -> None:
        wait_for(lambda: world.steps >= 30, "30 agent steps")
        runtime.main.system.shutdown.__wrapped__(runtime.main.system)  # type: ignore[attr-defined]

    torch.manual_seed(0)
    assert run_with(runtime, script) == 0

    assert gc.isenabled()  # back on after the run
    assert set(world.automatic) == ({False} if mode == "inference" else {True})
    events = EventAccumulator(str(tmp_path / "tb" / "inference"), size_guidance={"scalars": 0})
    events.Reload()
    collections = [e.value for e in events.Scalars("inference/gc_collections")]
    assert len(collections) >= 30
    if mode == "inference":  # nothing else collects; a step without slack may postpone
        assert sum(collections) >= len(collections) // (SlackCollector().patience + 1)
