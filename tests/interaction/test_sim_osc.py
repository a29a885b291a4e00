from __future__ import annotations

import socket
import threading

import pytest
import torch

from ami.interaction.io.osc_actuator import OscActuator
from ami.interaction.worlds.sim import SimEnvironment, SimOscEnvironment, SimWorld
from tests.interaction.world_parts import random_actions


def world(seed: int = 4) -> SimWorld:
    return SimWorld(width=32, height=32, seed=seed)


def test_actions_over_the_real_osc_path_move_the_sim_as_the_direct_sim() -> None:
    threads = threading.active_count()
    direct, wired = SimEnvironment(world()), SimOscEnvironment(world())
    wired.setup()
    assert threading.active_count() == threads  # no receiver thread
    for step, action in enumerate(random_actions(80, seed=2)):
        assert torch.equal(wired.observe()["image"], direct.observe()["image"]), f"step {step}"
        assert wired.pose == direct.pose
        direct.affect(action)
        wired.affect(action)
        if step == 40:  # a pause between acting and observing changes nothing
            wired.on_pause()
            wired.on_resume()
    assert torch.equal(wired.observe()["image"], direct.observe()["image"])
    assert wired.metrics() == direct.metrics()
    assert wired.cells_visited > 1
    wired.teardown()
    assert threading.active_count() == threads


def test_a_message_burst_arrives_whole() -> None:
    env = SimOscEnvironment(world())
    env.setup()
    for action in random_actions(100):  # 500 messages before the world reads any
        env.affect(action)
    env.observe()
    assert env.server.received == env.actuator.messages_sent == 500  # type: ignore[union-attr]
    assert env.world.steps == 1
    env.teardown()


def test_each_run_gets_its_own_free_port() -> None:
    first, second = SimOscEnvironment(world()), SimOscEnvironment(world())
    first.setup()
    second.setup()
    assert first.server.port != second.server.port
    assert first.actuator is not None and first.actuator.port == first.server.port
    first.teardown()
    second.teardown()


def test_a_taken_port_fails_at_setup_naming_it() -> None:
    taken = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    taken.bind(("127.0.0.1", 0))
    port = taken.getsockname()[1]
    with pytest.raises(OSError, match=f"127.0.0.1:{port}.*osc_port=0"):
        SimOscEnvironment(world(), osc_port=port).setup()
    taken.close()


def test_messages_that_never_arrive_fail_the_step_instead_of_desyncing() -> None:
    env = SimOscEnvironment(world(), sync_timeout=0.2)
    env.setup()
    elsewhere = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    elsewhere.bind(("127.0.0.1", 0))
    assert env.actuator is not None
    env.actuator.teardown()
    env.actuator = OscActuator("127.0.0.1", elsewhere.getsockname()[1])  # a wrong wire
    env.actuator.setup()
    env.affect(torch.tensor([1, 0, 0, 0, 0]))
    with pytest.raises(TimeoutError, match="received 0 of 5"):
        env.observe()
    env.teardown()
    elsewhere.close()


def test_bad_config_values_are_rejected() -> None:
    with pytest.raises(ValueError, match=r"interaction.osc_port"):
        SimOscEnvironment(world(), osc_port=-1)
    with pytest.raises(ValueError, match="look_speed"):
        SimOscEnvironment(world(), look_speed=2.0)
    with pytest.raises(ValueError, match="sync_timeout"):
        SimOscEnvironment(world(), sync_timeout=0.0)
