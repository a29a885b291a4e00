"""What an agent lives in: something that yields observations and takes actions."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any

import torch


class WorldEnded(Exception):
    """The world has nothing more to show (e.g. the last video ended).

    Raised from :meth:`Environment.observe` or :meth:`Environment.affect`; the inference
    thread then ends its loop and the run stops cleanly (exit code 0), instead of
    treating the end of the data as a failure.
    """


class Environment(ABC):
    """A world as the inference thread sees it.

    Observations are float tensors ``(C, H, W)`` in ``[0, 1]``; actions are int64 tensors
    of shape ``(len(action_choices),)``, one choice index per action category. All
    methods run on the inference thread, in this order: :meth:`setup`, then any number
    of :meth:`observe` / :meth:`affect` pairs (with :meth:`on_pause` / :meth:`on_resume`
    around pauses), then :meth:`teardown` exactly once, even after a failure.
    """

    action_choices: tuple[int, ...] | None = None
    """The action layout this world accepts (choices per category); None accepts any.

    Checked against ``interaction.action_choices`` when the system is built, since the
    models are sized from that key.
    """

    def setup(self) -> None:
        """Acquire resources (devices, sockets); fail here, loudly, if they are missing."""

    def teardown(self) -> None:
        """Release resources and leave the world in a neutral state (e.g. no key held)."""

    @abstractmethod
    def observe(self) -> torch.Tensor:
        """The current observation, ``(C, H, W)`` float in ``[0, 1]``."""

    @abstractmethod
    def affect(self, action: torch.Tensor) -> None:
        """Apply one action: an int64 tensor with one choice per action category."""

    def broke_continuity(self) -> bool:
        """Whether the observation just returned does not follow the one before it.

        True once after a jump: the world was reset, the video cut to another file.
        Asked after every :meth:`observe`; steps from then on start a new segment, so
        that no model learns the jump as if an action had caused it.
        """
        return False

    def on_pause(self) -> None:
        """The system paused: stop acting in the world (e.g. release all inputs)."""

    def on_resume(self) -> None:
        """The system resumed after :meth:`on_pause`."""

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint keeps of the world: its generator, the agent's pose in it.

        Only a world the program owns has any (the simulation, a video's position);
        the real world (VRChat) keeps the default, nothing.
        """
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict` (before :meth:`setup`)."""

    def metrics(self) -> Mapping[str, float]:
        """Numbers for TensorBoard only, never for the agent (e.g. the true pose).

        Keys are tag suffixes; the inference thread logs them under ``world/``.
        """
        return {}
