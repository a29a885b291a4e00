"""The curious agent: rewarded for its forward model's error, or its ensemble's disagreement."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from typing_extensions import override

from ami.data.collector import StepCollector
from ami.interaction.agent import Agent
from ami.interaction.environment import NO_FEEDBACK, Feedback
from ami.interaction.spaces import IMAGE, ActionSpace, MultiDiscrete, Observation, truth_entries
from ami.models.gate import InferenceModels
from ami.models.nets import MultiCategorical, disagreement
from ami.models.snapshot import InferenceModel
from ami.sharing import ReadOnlyError

DEFAULT_ACTION_NAMES = ("move_vertical", "move_horizontal", "look_horizontal", "jump", "run")
"""Names of the default world's action categories, for the entropy charts."""

REWARDS = ("error", "disagreement")
"""What :class:`CuriosityAgent` can be rewarded with (``agent.agent.reward``)."""


def _on(model: InferenceModel, *tensors: torch.Tensor) -> list[torch.Tensor]:
    # The agent keeps its state on the CPU; each model gets its inputs where it lives.
    device = model.device
    return [tensor.to(device) for tensor in tensors]


@dataclass(frozen=True)
class _Due:
    """A recorded step waiting for its reward: what it predicted, and what came."""

    previous: dict[str, torch.Tensor]
    """The previous step's record."""
    prediction: torch.Tensor
    """Its prediction of the latent that came next."""
    predicted_with: int
    """The encoder version that prediction's latent space is."""
    observation: torch.Tensor
    """What came next: this step's observation."""
    latent: torch.Tensor
    """The observation encoded."""
    encoded_with: int
    """By this encoder version."""


@dataclass(frozen=True)
class _Scored:
    """A recorded step whose reward was known when it was taken (a disagreement)."""

    previous: dict[str, torch.Tensor]
    """The previous step's record."""
    reward: torch.Tensor
    """Its reward."""


class CuriosityAgent(Agent):
    r"""Acts with a learned policy and rewards itself with its own prediction error.

    (Or with an ensemble's disagreement: ``reward="disagreement"``, below.)

    Each step, with observation :math:`o_t`:

    1. :math:`z_t = \mathrm{encoder}(o_t)`;
    2. the previous transition's reward :math:`r_{t-1}` is the mean squared error
       between the forward model's prediction made at :math:`t-1` and :math:`z_t`;
    3. ``logits, value = policy(z_t, h_t)`` and :math:`a_t` is drawn from them (or the
       previous action is held, with ``action_repeat``);
    4. ``prediction, h_{t+1} = dynamics(z_t, a_t, h_t)``: the prediction is kept for
       the next reward, the hidden state is the agent's memory.

    A step's record needs the next observation for its reward, so it is appended to the
    collector one step late: at step ``t+1`` the record of step ``t`` goes out with
    its observation (under its modality's name, ``image`` by default), ``action,
    latent, hidden, action_log_prob, value, reward`` and ``decision`` (whether the
    policy chose the action rather than holding it).

    Each step pins one generation of models (a snapshot), so the encoder, dynamics
    model and policy of one step were published together. The reward compares latents
    of one encoder version: if the encoder was republished between a prediction and
    its outcome, the prediction is redone with the new one.

    With ``reward="disagreement"`` the dynamics model must be an ensemble
    (:class:`~ami.models.nets.EnsembleDynamics`, ``model.models.dynamics.ensemble>=2``)
    and step 4 asks each member for its prediction; the reward of step :math:`t` is
    their disagreement about :math:`z_{t+1}`, the variance across members (about
    their mean, so the mean member's squared error is the mean prediction's plus this)
    averaged over latent entries. A source of pure noise (the noisy TV) cannot keep it
    high: every member learns to predict its mean. It is known at step :math:`t`, from
    one encoder version, so nothing is encoded again after a publication; the record
    still goes out one step late, as with the error, so that the trainers and buffers
    see the same flow whichever reward is chosen.

    A pause breaks time: the pending record, whose reward would span the gap, is
    discarded (counted in ``discarded_records``), and the first step after the resume
    computes no reward. The hidden state is kept, since the world it summarises is
    still there. A jump of the world (reset, video cut) discards the pending record
    too and starts the memory afresh.

    Args:
        encoder: Name of the image encoder model (a tuple output, as from a VAE
            encoder, is read as ``(mean, ...)``).
        dynamics: Name of the forward dynamics model.
        policy: Name of the policy-value model.
        action_names: One name per action category, for ``action_entropy/<name>``.
        action_repeat: Steps each sampled action is held.
        seed: Seed of the action sampling.
        modality: The observation entry the encoder reads.
        reward: ``"error"`` (the forward model's prediction error) or
            ``"disagreement"`` (an ensemble's disagreement).

    Raises:
        ValueError: ``reward`` is neither; at :meth:`bind`, ``"disagreement"`` with a
            dynamics model that has no members to disagree.
    """

    def __init__(
        self,
        encoder: str = "encoder",
        dynamics: str = "dynamics",
        policy: str = "policy",
        action_names: Sequence[str] = DEFAULT_ACTION_NAMES,
        action_repeat: int = 1,
        seed: int = 0,
        modality: str = IMAGE,
        reward: str = "error",
    ) -> None:
        if action_repeat < 1:
            raise ValueError(f"agent.action_repeat must be >= 1, got {action_repeat}")
        if reward not in REWARDS:
            raise ValueError(f"agent.agent.reward={reward!r}: expected one of {list(REWARDS)}")
        self.reward = reward
        self.modality = modality
        self.modalities = (modality,)
        self.model_names = {"encoder": encoder, "dynamics": dynamics, "policy": policy}
        self.action_names = [str(name) for name in action_names]
        self.action_repeat = action_repeat
        self._generator = torch.Generator().manual_seed(seed)
        self._hidden = torch.zeros(0)
        self._action = torch.zeros(0, dtype=torch.long)
        self._held = 0
        self._pending: dict[str, torch.Tensor] | None = None
        self._prediction: torch.Tensor | None = None
        self._prediction_version = 0
        self._discarded = 0
        self._due: _Due | _Scored | None = None
        self._disagreement: torch.Tensor | None = None
        """With ``reward="disagreement"``: the pending record's reward, known at its step."""
        self._restored: dict[str, Any] = {}
        self._metrics: dict[str, float] = {}

    @override
    def bind(self, models: InferenceModels, collector: StepCollector) -> None:
        for role, name in self.model_names.items():
            if name not in models.names:
                raise KeyError(
                    f"agent CuriosityAgent needs a {role} model named {name!r} "
                    f"(agent.agent.{role}); the models are {sorted(models.names)}. "
                    "Use a model config that has it, e.g. model=world_model."
                )
        super().bind(models, collector)
        if self.reward == "disagreement":
            self._check_ensemble()

    def _check_ensemble(self) -> None:
        """Refuse a dynamics model without members, before the run starts."""
        name = self.model_names["dynamics"]
        with self.models.snapshot() as models:
            dynamics = models[name]
            try:
                dynamics.predict_members  # noqa: B018  (only asks whether it is declared)
            except ReadOnlyError:
                raise ValueError(
                    f"agent.agent.reward=disagreement needs an ensemble of forward models, but "
                    f"model {name!r} has no members to disagree (no predict_members): set "
                    "model.models.dynamics.ensemble to 2 or more, or agent.agent.reward=error"
                ) from None

    @override
    def fit_action_space(self, space: ActionSpace | None) -> None:
        if not isinstance(space, MultiDiscrete) or len(space.choices) != len(self.action_names):
            raise ValueError(
                f"the curiosity agent drives MultiDiscrete actions of "
                f"{len(self.action_names)} categories (agent.agent.action_names="
                f"{self.action_names}), but the world takes {space}"
            )

    @override
    def setup(self) -> None:
        self._hidden = self._initial_hidden()
        self._held = 0
        self._pending = None
        self._prediction = None
        self._disagreement = None
        if self._restored:  # a resumed run carries on the saved memory
            self._hidden = self._restored["hidden"].clone()
            self._action = self._restored["action"].clone()
            self._held = int(self._restored["held"])
            self._restored = {}

    def _initial_hidden(self) -> torch.Tensor:
        with self.models.snapshot() as models:
            hidden: torch.Tensor = models[self.model_names["dynamics"]].initial_hidden(1)
        return hidden.cpu()

    @override
    def teardown(self) -> None:
        self._pending = None
        self._prediction = None
        self._disagreement = None

    @override
    def state_dict(self) -> dict[str, Any]:
        # A resume is a gap in time: the pending record is dropped as at a pause.
        discarded = self._discarded + (self._pending is not None)
        return {
            "hidden": self._hidden,
            "action": self._action,
            "held": self._held,
            "generator": self._generator.get_state(),
            "discarded": discarded,
        }

    @override
    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self._restored = {key: state[key] for key in ("hidden", "action", "held")}
        self._generator.set_state(state["generator"])
        self._discarded = int(state["discarded"])

    @override
    def on_pause(self) -> None:
        self._discard_pending()

    @override
    def on_discontinuity(self) -> None:
        self._discard_pending()
        self._hidden = self._initial_hidden()

    def _discard_pending(self) -> None:
        if self._pending is not None:
            self._discarded += 1
        self._pending = None
        self._prediction = None
        self._disagreement = None

    @override
    def step(self, observation: Observation) -> torch.Tensor:
        names = self.model_names
        with torch.inference_mode(), self.models.snapshot() as models:
            return self._step(
                models[names["encoder"]],
                models[names["dynamics"]],
                models[names["policy"]],
                observation[self.modality],
                truth_entries(observation),
            )

    def _step(
        self,
        encoder: InferenceModel,
        dynamics: InferenceModel,
        policy: InferenceModel,
        observation: torch.Tensor,
        truth: Mapping[str, torch.Tensor],
    ) -> torch.Tensor:
        latent = self._encode(encoder, observation)
        self._metrics.pop("intrinsic_reward", None)
        if self._disagreement is not None and self._pending is not None:
            self._due = _Scored(self._pending, self._disagreement)  # recorded in after_action
        elif self._prediction is not None and self._pending is not None:
            # Scored in after_action, once the action is out.
            self._due = _Due(
                self._pending,
                self._prediction,
                self._prediction_version,
                observation,
                latent,
                encoder.version,
            )
        self._metrics["discarded_records"] = float(self._discarded)
        logits, value = policy(*_on(policy, latent, self._hidden))
        distribution = MultiCategorical([part.float().cpu() for part in logits])
        decision = self._held == 0
        if decision:
            self._action = distribution.sample(self._generator)[0]
        self._held = (self._held + 1) % self.action_repeat
        inputs = _on(dynamics, latent, self._action[None], self._hidden)
        if self.reward == "disagreement":
            members, next_hidden = dynamics.predict_members(*inputs)
            self._disagreement = disagreement(members.float().cpu())
        else:
            prediction, next_hidden = dynamics(*inputs)
            self._prediction = prediction.float().cpu()
            self._prediction_version = encoder.version
        value = value.float().cpu()
        self._pending = {
            self.modality: observation,
            "action": self._action,
            "latent": latent[0],
            "hidden": self._hidden[0],
            "action_log_prob": distribution.log_prob(self._action[None])[0],
            "value": value[0],
            "decision": torch.tensor(decision),
            **truth,  # for an evaluation's probe (ami.evaluation), never for deciding
        }
        self._hidden = next_hidden.float().cpu()
        self._record_metrics(distribution, float(value[0]))
        return self._action

    @override
    def after_action(self, feedback: Feedback = NO_FEEDBACK) -> None:
        """Record the previous step with its reward: its disagreement, or its error.

        A disagreement was known at its step. An error is scored here, and both
        latents must come from one encoder version; otherwise the reward would
        compare two latent spaces: a spike after every representation run that has
        nothing to do with novelty. After a publication (a few percent of steps) this
        means encoding again, which is why it waits until the action is out.
        """
        due, self._due = self._due, None
        if due is None:
            return
        reward = due.reward if isinstance(due, _Scored) else self._prediction_error(due)
        self.collector.append({**due.previous, "reward": reward})
        self._metrics["intrinsic_reward"] = float(reward)

    def _prediction_error(self, due: _Due) -> torch.Tensor:
        """The mean squared error of the step's prediction, in one encoder's latent space."""
        prediction, latent = due.prediction, due.latent
        if due.predicted_with != due.encoded_with:
            names = self.model_names
            with torch.inference_mode(), self.models.snapshot() as models:
                encoder, dynamics = models[names["encoder"]], models[names["dynamics"]]
                if encoder.version != due.encoded_with:  # published again since the step
                    latent = self._encode(encoder, due.observation)
                prediction = self._predict_again(encoder, dynamics, due.previous)
        error: torch.Tensor = (prediction - latent).float().square().mean()
        return error

    def _predict_again(
        self, encoder: InferenceModel, dynamics: InferenceModel, pending: Mapping[str, torch.Tensor]
    ) -> torch.Tensor:
        """The last prediction redone in the latent space of an encoder published since."""
        previous = self._encode(encoder, pending[self.modality])
        prediction, _ = dynamics(
            *_on(dynamics, previous, pending["action"][None], pending["hidden"][None])
        )
        redone: torch.Tensor = prediction.float().cpu()
        return redone

    @staticmethod
    def _encode(encoder: InferenceModel, observation: torch.Tensor) -> torch.Tensor:
        encoded: Any = encoder(*_on(encoder, observation[None]))
        latent: torch.Tensor = encoded[0] if isinstance(encoded, tuple) else encoded
        return latent.float().cpu()

    def _record_metrics(self, distribution: MultiCategorical, value: float) -> None:
        entropies = distribution.entropies()[0].tolist()
        if len(entropies) != len(self.action_names):
            raise ValueError(
                f"agent.action_names names {len(self.action_names)} categories "
                f"({self.action_names}) but the policy has {len(entropies)}"
            )
        self._metrics["policy_value"] = value
        for name, entropy in zip(self.action_names, entropies, strict=True):
            self._metrics[f"action_entropy/{name}"] = entropy

    @override
    def metrics(self) -> Mapping[str, float]:
        return dict(self._metrics)
