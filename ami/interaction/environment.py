"""What an agent lives in: something that yields observations and takes actions."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import torch

from ami.interaction.spaces import ActionSpace, Box, MultiDiscrete, Observation


class WorldEnded(Exception):
    """The world has nothing more to show (e.g. the last video ended).

    Raised from :meth:`Environment.observe` or :meth:`Environment.affect`; the inference
    thread then ends its loop and the run stops cleanly (exit code 0), instead of
    treating the end of the data as a failure.
    """


@dataclass(frozen=True)
class Feedback:
    """What the world says about the action just applied, besides the next observation.

    Most worlds say nothing (the defaults). A task with a score (a Gymnasium
    environment) gives a reward; one with episodes says when one ended: ``terminated``
    (the task's own end: the pole fell) or ``truncated`` (a time limit). After an end
    the world starts the next episode itself, and its next observation reports a
    broken continuity, so no sequence spans two episodes.
    """

    reward: float | None = None
    """Extrinsic reward for the action; None if the world has no such thing."""
    terminated: bool = False
    truncated: bool = False

    @property
    def episode_ended(self) -> bool:
        """Whether this action ended an episode."""
        return self.terminated or self.truncated


NO_FEEDBACK: Final = Feedback()


class Environment(ABC):
    """A world as the inference thread sees it.

    An observation is a mapping of modality name to tensor (:mod:`ami.interaction.spaces`):
    ``{"image": (C, H, W) float in [0, 1]}`` for a camera, more entries for more senses,
    as :meth:`observation_space` declares. Actions are int64 tensors of shape
    ``(len(action_choices),)``, one choice index per action category, or what
    :meth:`action_space` declares otherwise. All methods run on the inference thread,
    in this order: :meth:`setup`, then any number of :meth:`observe` / :meth:`affect` /
    :meth:`feedback` rounds (with :meth:`on_pause` / :meth:`on_resume` around pauses),
    then :meth:`teardown` exactly once, even after a failure.
    """

    action_choices: tuple[int, ...] | None = None
    """The action layout this world accepts (choices per category); None accepts any.
    Checked against ``interaction.action_choices`` when the system is built, since the
    models are sized from that key.
    """

    resumes_episodes: bool = True
    """Whether a resumed run continues the episode a checkpoint was taken in (its state
    is saved); a world that cannot save one (a Gymnasium env) starts a new episode, and
    the episode's return and length so far are dropped with it."""

    time_scalable: bool = False
    """Whether the world's time is its steps, so that ``time_scale`` can speed it up (a
    simulation, a recording). A world that runs on real time (VRChat, a live camera)
    cannot, and ``time_scale != 1`` is refused before the run starts."""

    def setup(self) -> None:
        """Acquire resources (devices, sockets); fail here, loudly, if they are missing."""

    def teardown(self) -> None:
        """Release resources and leave the world in a neutral state (e.g. no key held)."""

    @abstractmethod
    def observation_space(self) -> Mapping[str, Box]:
        """What :meth:`observe` returns: a space per modality, known before :meth:`setup`.

        The runtime checks trainers and agents against it before the run starts, and
        the first observation against it once.
        """

    def action_space(self) -> ActionSpace | None:
        """What :meth:`affect` accepts; None accepts anything (a world that only records).

        By default the multi-categorical layout of :attr:`action_choices`.
        """
        return None if self.action_choices is None else MultiDiscrete(tuple(self.action_choices))

    @abstractmethod
    def observe(self) -> Observation:
        """The current observation: modality name -> tensor, as declared."""

    @abstractmethod
    def affect(self, action: torch.Tensor) -> None:
        """Apply one action: an int64 tensor with one choice per action category."""

    def feedback(self) -> Feedback:
        """The reward and episode end of the action :meth:`affect` just applied."""
        return NO_FEEDBACK

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

    def truth(self) -> Mapping[str, torch.Tensor]:
        """The world's privileged state about itself (e.g. the agent's pose), for evaluation.

        Probes read it (how much of the true pose an encoder's latent holds); it is never
        given to an agent, which must learn from its observations alone. The interaction
        asks once per step, right after :meth:`observe`, so it must be cheap and describe
        the same instant as that observation. The real world and recordings know nothing
        of the kind: the default, nothing.
        """
        return {}

    def images(self) -> Mapping[str, torch.Tensor]:
        """Pictures of the world's own state for TensorBoard (e.g. a map of where it went).

        Each is ``(3, H, W)`` float in ``[0, 1]``, as
        :meth:`ami.metrics.event_writer.EventWriter.image` takes it, keyed by tag suffix
        (logged under ``images/world/``). Asked for rarely (once a world minute), so
        they may cost milliseconds; never shown to the agent. By default, none.
        """
        return {}
