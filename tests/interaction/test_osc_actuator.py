from __future__ import annotations

import logging

import pytest
import torch

from ami.interaction.io.osc_actuator import OscActuator
from tests.interaction.world_parts import OscRecorder

ALL_PRESSED = torch.tensor([1, 1, 1, 1, 1])
ALL_NEGATIVE = torch.tensor([2, 2, 2, 0, 0])
ZEROS = [
    ("/input/Vertical", (0.0,)),
    ("/input/Horizontal", (0.0,)),
    ("/input/LookHorizontal", (0.0,)),
    ("/input/Jump", (0,)),
    ("/input/Run", (0,)),
]


def typed(messages: list[tuple[str, tuple[object, ...]]]) -> list[tuple[str, str, object]]:
    return [(address, type(args[0]).__name__, args[0]) for address, args in messages]


@pytest.fixture
def actuator(osc_recorder: OscRecorder) -> OscActuator:
    actuator = OscActuator("127.0.0.1", osc_recorder.port)
    actuator.setup()
    return actuator


def test_every_address_type_and_value(osc_recorder: OscRecorder, actuator: OscActuator) -> None:
    actuator.operate(ALL_PRESSED)
    assert typed(osc_recorder.receive(5)) == [
        ("/input/Vertical", "float", 1.0),
        ("/input/Horizontal", "float", 1.0),
        ("/input/LookHorizontal", "float", 1.0),
        ("/input/Jump", "int", 1),
        ("/input/Run", "int", 1),
    ]
    actuator.operate(ALL_NEGATIVE)
    assert typed(osc_recorder.receive(5)) == [
        ("/input/Vertical", "float", -1.0),
        ("/input/Horizontal", "float", -1.0),
        ("/input/LookHorizontal", "float", -1.0),
        ("/input/Jump", "int", 0),
        ("/input/Run", "int", 0),
    ]
    assert actuator.messages_sent == 10
    actuator.teardown()


def test_configured_speeds_are_sent(osc_recorder: OscRecorder) -> None:
    actuator = OscActuator("127.0.0.1", osc_recorder.port, 0.5, 0.25, 0.75)
    actuator.setup()
    actuator.operate(torch.tensor([1, 2, 1, 0, 0]))
    values = [args[0] for _, args in osc_recorder.receive(5)]
    assert values[:3] == [0.5, -0.25, 0.75]
    actuator.teardown()


def test_pause_stops_everything_and_resume_restores(
    osc_recorder: OscRecorder, actuator: OscActuator
) -> None:
    actuator.operate(ALL_PRESSED)
    pressed = osc_recorder.receive(5)
    actuator.on_pause()
    assert osc_recorder.receive(5) == ZEROS
    actuator.on_resume()
    assert osc_recorder.receive(5) == pressed
    actuator.teardown()


def test_teardown_releases_every_input_and_closes(
    osc_recorder: OscRecorder, actuator: OscActuator
) -> None:
    actuator.operate(ALL_PRESSED)
    osc_recorder.receive(5)
    actuator.teardown()
    assert sorted(osc_recorder.receive(5)) == sorted(ZEROS)
    osc_recorder.assert_silent()
    with pytest.raises(RuntimeError, match="before setup"):
        actuator.operate(ALL_PRESSED)


def test_teardown_without_any_action_sends_nothing(
    osc_recorder: OscRecorder, actuator: OscActuator
) -> None:
    actuator.teardown()
    osc_recorder.assert_silent()


def test_send_error_is_logged_with_the_address_and_raised(
    osc_recorder: OscRecorder, actuator: OscActuator, caplog: pytest.LogCaptureFixture
) -> None:
    actuator._client.close()  # type: ignore[union-attr]  # a real OSError on the next send
    with caplog.at_level(logging.ERROR), pytest.raises(OSError):
        actuator.operate(ALL_PRESSED)
    assert f"127.0.0.1:{osc_recorder.port}" in caplog.text
    for address in ("/input/Vertical", "/input/Run"):  # every input was still tried
        assert address in caplog.text


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"port": 70000}, "interaction.osc_port"),
        ({"port": 0}, "interaction.osc_port"),
        ({"look_speed": 1.5}, "look_speed"),
        ({"vertical_speed": 0.0}, "vertical_speed"),
    ],
)
def test_bad_config_values_are_rejected(kwargs: dict[str, float], words: str) -> None:
    with pytest.raises(ValueError, match=words):
        OscActuator(**kwargs)  # type: ignore[arg-type]


def test_bad_actions_are_rejected_before_anything_is_sent(
    osc_recorder: OscRecorder, actuator: OscActuator
) -> None:
    with pytest.raises(ValueError, match="move_vertical"):
        actuator.operate(torch.tensor([5, 0, 0, 0, 0]))
    osc_recorder.assert_silent()
    actuator.teardown()
