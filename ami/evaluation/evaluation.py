"""What an evaluation is to the training thread: held-out steps in, ``eval/*`` numbers out."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from lightning_fabric import Fabric

from ami.config_checks import positive_number
from ami.evaluation.held_out import HoldOut
from ami.interaction.spaces import TRUTH_PREFIX
from ami.models.gate import ModelGate


class Evaluation(ABC):
    """Scores the models on experience they never trained on, now and then and at the end.

    The training thread gives it every take (:meth:`HoldOut.split` keeps the held-out
    blocks) and, every ``every`` seconds and once more when the run ends, asks for its
    numbers, charted as ``eval/<name>`` against the steps taken.

    Args:
        withhold_from: Buffers that never see the held-out steps: those the evaluated
            models learn from.
        period, length, keep: The hold-out schedule (:class:`HoldOut`).
        every: Seconds between evaluations during the run.
        keys: Step keys to keep of each held-out step.
    """

    def __init__(
        self,
        withhold_from: Sequence[str],
        period: int,
        length: int,
        keep: int,
        every: float,
        keys: Sequence[str],
    ) -> None:
        if not withhold_from:
            raise ValueError(
                "evaluation.withhold_from is empty: name the buffers the evaluated models "
                "learn from (e.g. [experience]), or the held-out steps are trained on too"
            )
        self.withhold_from = tuple(withhold_from)
        self.every = positive_number("evaluation.every", every)
        self.hold_out = HoldOut(period, length, keep, keys)
        self.models: ModelGate
        self.fabric: Fabric

    @property
    @abstractmethod
    def reads(self) -> tuple[str, ...]:
        """The model names it evaluates (checked against the models before start)."""

    @property
    @abstractmethod
    def modalities(self) -> tuple[str, ...]:
        """The observation entries it reads (checked against the world before start)."""

    @property
    def wants_truth(self) -> bool:
        """Whether steps should carry the world's own state (``truth/*``)."""
        return any(key.startswith(TRUTH_PREFIX) for key in self.hold_out.keys)

    def bind(self, models: ModelGate, fabric: Fabric) -> None:
        """Give it the training copies (on the training thread, before the first take)."""
        self.models = models
        self.fabric = fabric

    @abstractmethod
    def evaluate(self, steps_taken: int, interrupted: Callable[[], bool]) -> dict[str, float]:
        """The numbers now (without the ``eval/`` prefix); empty when there is too little.

        Args:
            steps_taken: Steps the run has taken so far (where "recent" starts from).
            interrupted: True when a pause or shutdown wants the thread: stop early and
                return ``{}`` (nothing half-measured is charted).
        """

    def state_dict(self) -> dict[str, Any]:
        """The held-out steps kept so far."""
        return {"hold_out": self.hold_out.state_dict()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict`."""
        self.hold_out.load_state_dict(state["hold_out"])
