"""Something that acts in the world (VRChat's OSC inputs), apart from what observes it."""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch


class Actuator(ABC):
    """Applies actions on the inference thread; leaves the world neutral when it stops.

    The pause hooks exist because a real world keeps running while the system is paused:
    an input left held would keep the avatar walking.
    """

    def setup(self) -> None:
        """Open the connection; fail here, naming it, if it cannot be opened."""

    def teardown(self) -> None:
        """Release every input this actuator touched, then close the connection."""

    @abstractmethod
    def operate(self, action: torch.Tensor) -> None:
        """Apply one action: int64 ``(5,)``, one choice per category."""

    def on_pause(self) -> None:
        """Stop acting: release every input."""

    def on_resume(self) -> None:
        """Hold again what the last action held before :meth:`on_pause`."""
