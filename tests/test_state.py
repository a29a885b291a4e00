"""The state protocol piece by piece: each part gives its state and takes it back exactly."""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from lightning_fabric import Fabric
from runtime_parts import small_models

from ami.data import RandomReplacementBuffer, SequentialBuffer, StepCollector
from ami.interaction.agents import CuriosityAgent
from ami.interaction.worlds.sim import SimEnvironment, SimWorld
from ami.metrics import EventWriter
from ami.state import global_rng_state, set_global_rng_state, snapshot
from ami.system import SystemControl
from ami.trainers import ReconstructionTrainer


def draws() -> tuple[float, float, float]:
    return float(torch.rand(())), float(np.random.rand()), random.random()


def test_the_global_generators_continue_from_a_saved_state() -> None:
    state = snapshot(global_rng_state())
    expected = [draws() for _ in range(3)]
    set_global_rng_state(state)
    assert [draws() for _ in range(3)] == expected


def test_a_snapshot_does_not_change_with_the_original() -> None:
    live = {"w": torch.zeros(3), "nested": [torch.ones(2)], "n": 1}
    copy = snapshot(live)
    live["w"].add_(5)
    live["nested"][0].add_(5)
    assert torch.equal(copy["w"], torch.zeros(3)) and torch.equal(copy["nested"][0], torch.ones(2))


def steps(start: int, stop: int) -> list[dict[str, torch.Tensor]]:
    return [{"i": torch.tensor(i), "x": torch.full((2,), i / 10)} for i in range(start, stop)]


@pytest.mark.parametrize(
    "make",
    [
        lambda: SequentialBuffer(capacity=16, seed=3),
        lambda: RandomReplacementBuffer(capacity=16, chunk_length=4, seed=3),
    ],
)
def test_a_buffer_continues_exactly_after_a_round_trip(
    make: Callable[[], SequentialBuffer],
) -> None:
    original = make()
    original.extend(steps(0, 30), [i // 7 for i in range(30)])
    copy = make()
    copy.load_state_dict(snapshot(original.state_dict()))
    assert len(copy) == len(original) and copy.metrics() == original.metrics()
    for buffer in (original, copy):
        buffer.extend(steps(30, 33), [9, 9, 9])
    a, b = original.sample_sequences(8, 2), copy.sample_sequences(8, 2)
    assert all(torch.equal(a[key], b[key]) for key in a)


def test_a_buffer_of_another_capacity_refuses_the_state_naming_the_setting() -> None:
    small = SequentialBuffer(capacity=8)
    small.extend(steps(0, 4))
    with pytest.raises(ValueError, match=r"buffer\.capacity or chunk_length changed"):
        SequentialBuffer(capacity=16).load_state_dict(small.state_dict())


def test_the_sim_world_continues_exactly_after_a_round_trip() -> None:
    original = SimEnvironment(SimWorld(width=16, height=16, seed=4))
    action = torch.tensor([2, 1, 2, 0, 1])
    for _ in range(20):
        original.affect(action)
    copy = SimEnvironment(SimWorld(width=16, height=16, seed=99))  # another start
    copy.load_state_dict(snapshot(original.state_dict()))
    for _ in range(30):
        original.affect(action)
        copy.affect(action)
        assert torch.equal(original.observe()["image"], copy.observe()["image"])
    assert copy.metrics() == original.metrics()


def test_the_curious_agent_carries_on_its_memory_and_its_generator() -> None:
    models = small_models()
    frames = [torch.rand(3, 16, 16, generator=torch.Generator().manual_seed(t)) for t in range(12)]

    def agent() -> CuriosityAgent:
        made = CuriosityAgent(action_repeat=2, seed=0)
        made.bind(models.inference, StepCollector())
        return made

    original = agent()
    original.setup()
    for frame in frames[:5]:
        original.step({"image": frame})
    copy = agent()
    copy.load_state_dict(snapshot(original.state_dict()))
    copy.setup()
    original.on_pause()  # a resume drops the pending record, as a pause does
    for frame in frames[5:]:
        assert torch.equal(original.step({"image": frame}), copy.step({"image": frame}))
    assert original.metrics() == copy.metrics()


def test_a_resumed_trainer_takes_its_state_from_the_checkpoint_and_its_settings_from_the_config(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Before: resume_from with a new lr trained at the checkpoint's lr, silently."""

    def trainer(lr: float) -> ReconstructionTrainer:
        made = ReconstructionTrainer(lr=lr, batch_size=2)
        models = small_models()
        buffer = SequentialBuffer(capacity=8)
        control = SystemControl().handle_for("training")
        writer = EventWriter(tmp_path / f"tb{lr}")
        made.bind(
            "representation",
            models,
            {"experience": buffer},
            Fabric(accelerator="cpu", devices=1),
            control,
            writer,
        )
        made.setup()
        return made

    first = trainer(1e-3)
    first.global_step, first.runs = 7, 2
    second = trainer(1e-4)
    with caplog.at_level(logging.INFO):
        second.load_state_dict(snapshot(first.state_dict()))
    assert (second.global_step, second.runs) == (7, 2)
    assert second.optimizer.param_groups[0]["lr"] == 1e-4
    assert "lr 0.001 -> 0.0001" in caplog.text
