"""A source of observations (a camera, a video), apart from anything that acts."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any

import torch

from ami.interaction.spaces import IMAGE, Box


class Sensor(ABC):
    """Reads the world on the inference thread: :meth:`setup`, :meth:`read`..., :meth:`teardown`.

    Kept apart from :class:`~ami.interaction.io.actuator.Actuator` so that one camera can
    be paired with any way of acting (VRChat's OSC, nothing at all for a video).
    """

    def setup(self) -> None:
        """Open the source; fail here, naming it, if it cannot be opened."""

    def teardown(self) -> None:
        """Release the source."""

    modality: str = IMAGE
    """The observation's entry this sensor fills."""

    time_scalable: bool = False
    """Whether readings follow steps, not the wall clock (a recording, not a live camera)."""

    @abstractmethod
    def space(self) -> Box:
        """What :meth:`read` returns (a camera: ``(C, H, W)`` float in ``[0, 1]``)."""

    @abstractmethod
    def read(self) -> torch.Tensor:
        """The next reading, as :meth:`space` declares."""

    def state_dict(self) -> dict[str, Any]:
        """Where a recorded source is (a live camera keeps nothing)."""
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict` (before :meth:`setup`)."""

    def broke_continuity(self) -> bool:
        """Whether the last :meth:`read` does not follow the one before (a cut); once."""
        return False
