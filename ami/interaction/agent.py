"""The decision maker: observation in, action out, experience recorded on the way."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any

import torch

from ami.data.collector import StepCollector
from ami.interaction.environment import NO_FEEDBACK, Feedback
from ami.interaction.spaces import ActionSpace, Observation
from ami.models.gate import InferenceModels


class Agent(ABC):
    """Chooses actions on the inference thread and records what training needs.

    The runtime calls :meth:`bind` once before the thread starts, then :meth:`setup`,
    :meth:`step` once per tick, and :meth:`teardown`. Recurrent state (a hidden vector
    carried from step to step) belongs here, never inside a model: models are switched
    between threads and must hold no state between calls.

    Models are reached through a snapshot, one per step, so that every model a step
    calls comes from the same published generation::

        with self.models.snapshot() as m:
            latent = m["encoder"](observation["image"][None])
    """

    models: InferenceModels
    collector: StepCollector

    def bind(self, models: InferenceModels, collector: StepCollector) -> None:
        """Give the agent the read-only inference models and the experience collector."""
        self.models = models
        self.collector = collector

    def setup(self) -> None:
        """Prepare for the first step (allocate state, warm models up)."""

    def teardown(self) -> None:
        """Release what :meth:`setup` acquired."""

    modalities: tuple[str, ...] = ()
    """The observation entries this agent reads; the world must observe each."""

    def fit_action_space(self, space: ActionSpace | None) -> None:
        """Take the world's action space before the run starts, or refuse it.

        Raises:
            ValueError: This agent cannot drive ``space``; the message shows both.
        """

    @abstractmethod
    def step(self, observation: Observation) -> torch.Tensor:
        """Choose the action for ``observation`` and record the step's data.

        Args:
            observation: Modality name -> tensor, as the world declared
                (``observation["image"]``: ``(C, H, W)`` float in ``[0, 1]``).

        Returns:
            The action: int64, one choice index per action category, or what the
            world's action space declares.
        """

    def after_action(self, feedback: Feedback = NO_FEEDBACK) -> None:
        """Work of this step that can wait until its action is out (the same tick).

        The world sees the action as soon as :meth:`step` returns; bookkeeping that the
        action does not depend on (scoring the previous step, recording it) belongs
        here, so that it never delays a reaction. ``feedback`` is what the world said
        about the action: its reward and whether an episode ended, for an agent that
        wants them.
        """

    def on_pause(self) -> None:
        """The system paused; the next step follows a gap in time.

        Steps appended from here on start a new segment (the runtime sees to it).
        """

    def on_discontinuity(self) -> None:
        """The world jumped: the new observation does not follow the last one.

        E.g. a reset, a cut to another video. Steps appended from here on start a new
        segment (the runtime sees to it).
        """

    def on_resume(self) -> None:
        """The system resumed after :meth:`on_pause`."""

    def state_dict(self) -> dict[str, Any]:
        """What the agent carries between steps (memory, counters, its generator).

        Saved at a safe point between steps; a resumed run is a gap in time like a
        pause, so anything a pause drops need not be saved. A stateless agent keeps
        the default (nothing).
        """
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict` (before :meth:`setup`)."""

    def metrics(self) -> Mapping[str, float]:
        """Per-step numbers for TensorBoard, logged as ``inference/<key>``.

        E.g. ``intrinsic_reward``, ``policy_value``, ``action_entropy/<category>``.
        """
        return {}
