from __future__ import annotations

import re

import pytest
import torch

from ami.interaction.io.actions import (
    OSC_ADDRESSES,
    Inputs,
    inputs_from_action,
    validate_action,
)


def test_every_choice_maps_to_its_documented_input() -> None:
    assert inputs_from_action(torch.tensor([0, 0, 0, 0, 0])) == Inputs()
    assert inputs_from_action(torch.tensor([1, 1, 1, 1, 1])) == Inputs(1.0, 1.0, 1.0, True, True)
    assert inputs_from_action(torch.tensor([2, 2, 2, 0, 0])) == Inputs(-1.0, -1.0, -1.0)


def test_speeds_scale_the_axes() -> None:
    inputs = inputs_from_action(torch.tensor([2, 1, 2, 0, 0]), 0.5, 0.25, 0.75)
    assert (inputs.vertical, inputs.horizontal, inputs.look_horizontal) == (-0.5, 0.25, -0.75)


@pytest.mark.parametrize(
    ("action", "error", "words"),
    [
        (torch.tensor([0, 0, 0, 0]), ValueError, "shape (5,)"),
        (torch.zeros(1, 5, dtype=torch.long), ValueError, "shape (5,)"),
        (torch.zeros(5), TypeError, "integer"),
        (torch.tensor([3, 0, 0, 0, 0]), ValueError, "move_vertical"),
        (torch.tensor([0, 0, -1, 0, 0]), ValueError, "look_horizontal"),
        (torch.tensor([0, 0, 0, 0, 2]), ValueError, "action[4] (run) = 2"),
        ([0, 0, 0, 0, 0], TypeError, "torch.Tensor"),
    ],
)
def test_bad_actions_are_rejected_with_what_is_accepted(
    action: torch.Tensor, error: type[Exception], words: str
) -> None:
    with pytest.raises(error, match=re.escape(words)):
        validate_action(action)


def test_osc_messages_round_trip_and_axes_are_clipped() -> None:
    inputs = Inputs(0.5, -1.0, 0.25, True, False)
    messages = inputs.to_osc()
    assert [address for address, _ in messages] == list(OSC_ADDRESSES)
    assert [type(value) for _, value in messages] == [float, float, float, int, int]
    rebuilt = Inputs()
    for address, value in messages:
        rebuilt = rebuilt.with_osc(address, value)
    assert rebuilt == inputs
    assert Inputs().with_osc("/input/Vertical", 7.0).vertical == 1.0
    with pytest.raises(KeyError, match="/input/Crouch"):
        Inputs().with_osc("/input/Crouch", 1)
