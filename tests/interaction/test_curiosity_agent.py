"""The curiosity agent with real small nets, a real model gate and a real collector."""

from __future__ import annotations

import math
from collections.abc import Mapping

import pytest
import torch
from runtime_parts import small_models
from torch import nn

from ami.data import SequentialBuffer, StepCollector
from ami.interaction.agents import CuriosityAgent
from ami.models import ModelGate, inference_method
from ami.models.nets import (
    EnsembleDynamics,
    ForwardDynamics,
    MultiCategorical,
    PolicyValue,
    disagreement,
)

CHOICES = [3, 3, 3, 2, 2]
NAMES = ["move_vertical", "move_horizontal", "look_horizontal", "jump", "run"]
KEYS = {
    "image",
    "action",
    "latent",
    "hidden",
    "action_log_prob",
    "value",
    "reward",
    "decision",
}


def make_agent(models: ModelGate, action_repeat: int = 1) -> tuple[CuriosityAgent, StepCollector]:
    agent = CuriosityAgent(action_names=NAMES, action_repeat=action_repeat, seed=0)
    collector = StepCollector()
    agent.bind(models.inference, collector)
    agent.setup()
    return agent, collector


def act(agent: CuriosityAgent, observation: torch.Tensor) -> torch.Tensor:
    """One tick as the runtime runs it: the step, then the work after the action."""
    action = agent.step({"image": observation})
    agent.after_action()
    return action


def frame(seed: int) -> torch.Tensor:
    return torch.rand(3, 16, 16, generator=torch.Generator().manual_seed(seed))


def test_actions_have_one_valid_choice_per_category() -> None:
    agent, _ = make_agent(small_models())
    for t in range(20):
        action = act(agent, frame(t))
        assert action.shape == (5,) and action.dtype == torch.long
        assert (action >= 0).all() and (action < torch.tensor(CHOICES)).all()


def test_records_arrive_one_step_late_carrying_their_own_transition() -> None:
    models = small_models()
    agent, collector = make_agent(models)
    frames = [frame(t) for t in range(4)]
    actions = [act(agent, frames[0])]
    assert collector.pending == 0, "the first step's reward needs the next observation"
    actions += [act(agent, f) for f in frames[1:]]
    records = list(collector.take())
    assert len(records) == 3
    shapes = {
        "image": (3, 16, 16),
        "action": (5,),
        "latent": (8,),
        "hidden": (16,),
        "action_log_prob": (),
        "value": (),
        "reward": (),
        "decision": (),
    }
    for t, record in enumerate(records):
        assert set(record) == KEYS
        assert {key: tuple(value.shape) for key, value in record.items()} == shapes
        assert torch.equal(record["image"], frames[t])
        assert torch.equal(record["action"], actions[t])
    assert torch.equal(records[0]["hidden"], torch.zeros(16)), "h_0 is the initial state"
    assert not torch.equal(records[1]["hidden"], torch.zeros(16))

    # The reward of step t is the prediction error of dynamics(z_t, a_t, h_t) against z_{t+1}.
    with models.inference.snapshot() as snapshot:
        encoder, dynamics = snapshot["encoder"], snapshot["dynamics"]
        for t in range(3):
            record = records[t]
            predicted, _ = dynamics(
                record["latent"][None], record["action"][None], record["hidden"][None]
            )
            expected = (predicted[0] - encoder(frames[t + 1][None])[0]).square().mean()
            assert torch.allclose(record["reward"], expected, atol=1e-6)
            assert torch.allclose(record["latent"], encoder(frames[t][None])[0])


def test_recorded_steps_train_through_a_buffer_despite_inference_mode() -> None:
    models = small_models()
    agent, collector = make_agent(models)
    for t in range(6):
        act(agent, frame(t))
    buffer = SequentialBuffer(capacity=8)
    buffer.extend(collector.take())
    batch = buffer.sample(4)
    policy = models.training_module("policy")
    logits, value = policy(batch["latent"], batch["hidden"])
    log_prob = MultiCategorical(logits).log_prob(batch["action"])
    ((value - batch["reward"]).square() - log_prob * batch["value"]).mean().backward()
    assert all(p.grad is not None for p in policy.parameters())


def train_dynamics_on(models: ModelGate, image: torch.Tensor) -> None:
    """Teach the forward model that ``image`` follows ``image``, whatever the action."""
    encoder = models.training_module("encoder")
    dynamics = models.training_module("dynamics")
    assert isinstance(dynamics, ForwardDynamics)
    optimizer = torch.optim.Adam(dynamics.parameters(), lr=1e-2)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        target = encoder(image[None]).expand(8, -1)
    for _ in range(150):
        hidden = dynamics.initial_hidden(8)
        loss = torch.zeros(())
        for _ in range(6):
            action = torch.stack(
                [torch.randint(n, (8,), generator=generator) for n in CHOICES], dim=1
            )
            predicted, hidden = dynamics(target, action, hidden)
            loss = loss + (predicted - target).square().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    models.publish(["dynamics"])


def test_a_surprising_transition_earns_more_reward_than_a_familiar_one() -> None:
    models = small_models()
    familiar, novel = frame(100), frame(200)
    train_dynamics_on(models, familiar)
    agent, collector = make_agent(models)
    for _ in range(6):
        act(agent, familiar)
    act(agent, novel)
    act(agent, novel)
    rewards = [float(record["reward"]) for record in collector.take()]
    familiar_rewards, surprise = rewards[:5], rewards[5]
    assert max(familiar_rewards) * 10 < surprise, rewards


def test_metrics_report_reward_value_and_entropy_per_category() -> None:
    agent, _ = make_agent(small_models())
    act(agent, frame(0))
    assert "intrinsic_reward" not in agent.metrics(), "no transition yet"
    act(agent, frame(1))
    metrics = agent.metrics()
    assert set(metrics) == {
        "intrinsic_reward",
        "discarded_records",
        "policy_value",
        *(f"action_entropy/{name}" for name in NAMES),
    }
    # A fresh policy is close to uniform.
    for name, choices in zip(NAMES, CHOICES):
        assert metrics[f"action_entropy/{name}"] == pytest.approx(math.log(choices), rel=0.01)
    assert all(math.isfinite(value) for value in metrics.values())


def test_no_reward_is_computed_across_a_pause() -> None:
    agent, collector = make_agent(small_models())
    act(agent, frame(0))
    act(agent, frame(1))
    assert collector.pending == 1
    agent.on_pause()
    agent.on_resume()
    act(agent, frame(2))
    assert collector.pending == 1, "the record spanning the pause was dropped"
    assert "intrinsic_reward" not in agent.metrics()
    assert agent.metrics()["discarded_records"] == 1.0, "and counted"
    act(agent, frame(3))
    records = list(collector.take())
    assert len(records) == 2
    assert torch.equal(records[1]["image"], frame(2))


def test_action_repeat_holds_choices_and_flags_the_decisions() -> None:
    agent, collector = make_agent(small_models(), action_repeat=3)
    actions = [act(agent, frame(t)) for t in range(10)]
    for start in (0, 3, 6):
        assert all(torch.equal(actions[start], a) for a in actions[start : start + 3])
    decisions = [bool(record["decision"]) for record in collector.take()]
    assert decisions == [True, False, False] * 3


def test_a_missing_model_is_named_with_the_models_available() -> None:
    full = small_models()
    models = ModelGate({name: full.training_module(name) for name in ("encoder", "decoder")})
    agent = CuriosityAgent()
    with pytest.raises(KeyError, match=r"dynamics.*\['decoder', 'encoder'\]"):
        agent.bind(models.inference, StepCollector())


def test_action_names_must_match_the_policy() -> None:
    agent = CuriosityAgent(action_names=["a", "b"])
    models = small_models()
    agent.bind(models.inference, StepCollector())
    agent.setup()
    with pytest.raises(ValueError, match="2 categories"):
        act(agent, frame(0))


def republish_encoder(models: ModelGate, factor: float) -> None:
    """Scale the encoder's weights and publish it: the latent space changes under the agent."""
    with torch.no_grad():
        for param in models.training_module("encoder").parameters():
            param.mul_(factor)
    models.publish(["encoder"])


def reward_in_newest_space(
    models: ModelGate,
    first: torch.Tensor,
    second: torch.Tensor,
    record: Mapping[str, torch.Tensor],
    hidden: torch.Tensor,
) -> torch.Tensor:
    """The reward of the step ``first -> second`` with both frames in the published encoder."""
    with models.inference.snapshot() as snapshot:
        new = snapshot["encoder"]
        predicted, _ = snapshot["dynamics"](new(first[None]), record["action"][None], hidden)
        reward: torch.Tensor = (predicted - new(second[None])).square().mean()
    return reward


def test_reward_after_an_encoder_sync_compares_latents_of_the_new_encoder() -> None:
    models = small_models()
    agent, collector = make_agent(models)
    first, second = frame(1), frame(2)
    act(agent, first)
    with models.inference.snapshot() as snapshot:
        hidden_before = snapshot["dynamics"].initial_hidden(1)
    republish_encoder(models, 5.0)  # a very different latent space
    act(agent, second)
    (record,) = list(collector.take())
    torch.testing.assert_close(
        record["reward"], reward_in_newest_space(models, first, second, record, hidden_before)
    )


def test_the_previous_step_is_scored_only_once_the_action_is_out() -> None:
    """Scoring may re-encode (after a publication): the world must not wait for it."""
    models = small_models()
    agent, collector = make_agent(models)
    act(agent, frame(1))
    republish_encoder(models, 5.0)
    agent.step({"image": frame(2)})
    assert collector.pending == 0, "the action came back before any scoring"
    assert "intrinsic_reward" not in agent.metrics()
    agent.after_action()
    assert collector.pending == 1
    assert "intrinsic_reward" in agent.metrics()


def test_a_reward_whose_step_saw_another_publication_is_scored_in_the_newest_space() -> None:
    models = small_models()
    agent, collector = make_agent(models)
    first, second = frame(1), frame(2)
    act(agent, first)
    with models.inference.snapshot() as snapshot:
        hidden_before = snapshot["dynamics"].initial_hidden(1)
    republish_encoder(models, 5.0)  # one publication before the step...
    agent.step({"image": second})
    republish_encoder(models, 0.5)  # ...and one between it and its scoring
    agent.after_action()
    (record,) = list(collector.take())
    torch.testing.assert_close(
        record["reward"], reward_in_newest_space(models, first, second, record, hidden_before)
    )


def test_a_jump_of_the_world_discards_the_pending_record_and_starts_memory_afresh() -> None:
    agent, collector = make_agent(small_models())
    for t in range(3):
        act(agent, frame(t))
    assert collector.pending == 2
    agent.on_discontinuity()
    assert torch.equal(agent._hidden, torch.zeros(1, 16)), "a new world needs a new memory"
    act(agent, frame(10))
    assert collector.pending == 2, "no record spans the jump"
    assert agent.metrics()["discarded_records"] == 1.0


# --- reward=disagreement -------------------------------------------------------------

SCALES = (1.0, 2.0, 3.0)
"""The stub ensemble's members predict the latent times these: variance 2/3 of z^2."""


class ScaledMembers(nn.Module):
    """A fixed ensemble whose disagreement about z_{t+1} is known: 2/3 * mean(z_t^2)."""

    def __init__(self) -> None:
        super().__init__()
        self.scales = nn.Parameter(torch.tensor(SCALES), requires_grad=False)
        self.latent_dim, self.hidden_dim, self.members = 8, 16, len(SCALES)

    def forward(
        self, latent: torch.Tensor, action: torch.Tensor, hidden: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        predictions, next_hidden = self.predict_members(latent, action, hidden)
        return predictions.mean(dim=0), next_hidden

    @inference_method
    def predict_members(
        self, latent: torch.Tensor, action: torch.Tensor, hidden: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return self.scales[:, None, None] * latent[None], hidden + 1

    @inference_method
    def initial_hidden(self, batch_size: int) -> torch.Tensor:
        return torch.zeros(batch_size, self.hidden_dim)


def with_dynamics(dynamics: nn.Module, policy_hidden: int = 16) -> ModelGate:
    """The small world model with another forward model (and a policy that reads its memory)."""
    parts = small_models()
    torch.manual_seed(3)
    return ModelGate(
        {
            "encoder": parts.training_module("encoder"),
            "decoder": parts.training_module("decoder"),
            "dynamics": dynamics,
            "policy": PolicyValue(8, policy_hidden, CHOICES, 16),
        }
    )


def ensemble_models() -> ModelGate:
    torch.manual_seed(2)
    return with_dynamics(EnsembleDynamics(3, 8, CHOICES, 16, 4), policy_hidden=48)


def disagreeing_agent(models: ModelGate) -> tuple[CuriosityAgent, StepCollector]:
    agent = CuriosityAgent(action_names=NAMES, seed=0, reward="disagreement")
    collector = StepCollector()
    agent.bind(models.inference, collector)
    agent.setup()
    return agent, collector


def test_a_disagreement_is_the_variance_of_the_predictions_made_at_its_own_step() -> None:
    models = with_dynamics(ScaledMembers())
    agent, collector = disagreeing_agent(models)
    frames = [frame(t) for t in range(5)]
    act(agent, frames[0])
    assert collector.pending == 0, "the record still goes out one step late"
    for f in frames[1:]:
        act(agent, f)
    records = list(collector.take())
    assert len(records) == 4
    with models.inference.snapshot() as snapshot:
        latents = [snapshot["encoder"](f[None])[0] for f in frames]
    for t, record in enumerate(records):
        assert set(record) == KEYS
        assert torch.equal(record["image"], frames[t])
        torch.testing.assert_close(record["latent"], latents[t])
        expected = torch.tensor(SCALES).var(correction=0) * latents[t].square().mean()
        torch.testing.assert_close(record["reward"], expected)
        assert float(expected) == pytest.approx(2 / 3 * float(latents[t].square().mean()))
    assert agent.metrics()["intrinsic_reward"] == pytest.approx(float(records[-1]["reward"]))


def test_an_ensembles_disagreement_reward_is_that_of_its_members_predictions() -> None:
    models = ensemble_models()
    agent, collector = disagreeing_agent(models)
    for t in range(4):
        act(agent, frame(t))
    records = list(collector.take())
    assert len(records) == 3 and records[1]["hidden"].shape == (48,)
    with models.inference.snapshot() as snapshot:
        for record in records:
            members, _ = snapshot["dynamics"].predict_members(
                record["latent"][None], record["action"][None], record["hidden"][None]
            )
            torch.testing.assert_close(record["reward"], disagreement(members))
            assert float(record["reward"]) > 0


def test_a_disagreement_is_not_redone_after_an_encoder_publication() -> None:
    """All its members predicted from one latent: it is already in one space."""
    models = with_dynamics(ScaledMembers())
    agent, collector = disagreeing_agent(models)
    first = frame(1)
    act(agent, first)
    with models.inference.snapshot() as snapshot:
        old = snapshot["encoder"](first[None])[0]
    republish_encoder(models, 5.0)
    agent.step({"image": frame(2)})
    republish_encoder(models, 0.5)
    agent.after_action()
    (record,) = list(collector.take())
    expected = torch.tensor(SCALES).var(correction=0) * old.square().mean()
    torch.testing.assert_close(record["reward"], expected)


def test_the_error_reward_with_an_ensemble_is_that_of_the_members_mean() -> None:
    models = ensemble_models()
    agent, collector = make_agent(models)
    frames = [frame(t) for t in range(3)]
    for f in frames:
        act(agent, f)
    records = list(collector.take())
    with models.inference.snapshot() as snapshot:
        encoder, dynamics = snapshot["encoder"], snapshot["dynamics"]
        for t, record in enumerate(records):
            members, _ = dynamics.predict_members(
                record["latent"][None], record["action"][None], record["hidden"][None]
            )
            expected = (members.mean(dim=0)[0] - encoder(frames[t + 1][None])[0]).square().mean()
            torch.testing.assert_close(record["reward"], expected)


def test_a_disagreement_spanning_a_pause_is_discarded_like_an_error() -> None:
    agent, collector = disagreeing_agent(with_dynamics(ScaledMembers()))
    act(agent, frame(0))
    agent.on_pause()
    agent.on_resume()
    act(agent, frame(1))
    assert collector.pending == 0 and agent.metrics()["discarded_records"] == 1.0
    act(agent, frame(2))
    (record,) = list(collector.take())
    assert torch.equal(record["image"], frame(1))


def test_a_resumed_disagreeing_agent_carries_on_the_ensembles_memory() -> None:
    models = ensemble_models()
    agent, _ = disagreeing_agent(models)
    for t in range(3):
        act(agent, frame(t))
    state = agent.state_dict()
    resumed = CuriosityAgent(action_names=NAMES, seed=0, reward="disagreement")
    resumed.load_state_dict(state)
    collector = StepCollector()
    resumed.bind(models.inference, collector)
    resumed.setup()
    assert torch.equal(resumed._hidden, state["hidden"]) and state["hidden"].shape == (1, 48)
    for t in range(3, 5):
        act(resumed, frame(t))
    (record,) = list(collector.take())
    assert torch.equal(record["hidden"], state["hidden"][0]), "the saved memory, all members"
    assert float(record["reward"]) > 0


def test_disagreement_with_a_single_forward_model_is_refused_naming_both_keys() -> None:
    agent = CuriosityAgent(action_names=NAMES, reward="disagreement")
    with pytest.raises(
        ValueError, match=r"agent\.agent\.reward=disagreement.*model\.models\.dynamics\.ensemble"
    ):
        agent.bind(small_models().inference, StepCollector())


def test_an_unknown_reward_names_the_key_and_the_choices() -> None:
    with pytest.raises(
        ValueError, match=r"agent\.agent\.reward='surprise'.*\['error', 'disagreement'\]"
    ):
        CuriosityAgent(reward="surprise")
