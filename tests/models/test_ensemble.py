"""EnsembleDynamics: forward models side by side, for a disagreement reward."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from torch import Tensor

import ami.experiment  # noqa: F401  (registers the resolvers, as scripts/launch.py does)
from ami.models import ModelGate
from ami.models.inference_methods import inference_methods
from ami.models.nets import (
    EnsembleDynamics,
    ForwardDynamics,
    build_dynamics,
    build_policy,
    disagreement,
    world_model_size,
)

CONF = Path(__file__).resolve().parents[2] / "conf"
CHOICES = [3, 3, 3, 2, 2]


def inputs(dynamics: ForwardDynamics | EnsembleDynamics, batch: int = 3) -> tuple[Tensor, ...]:
    generator = torch.Generator().manual_seed(7)
    latent = torch.randn(batch, dynamics.latent_dim, generator=generator)
    action = torch.stack([torch.randint(n, (batch,), generator=generator) for n in CHOICES], 1)
    hidden = torch.randn(batch, dynamics.hidden_dim, generator=generator).tanh()
    return latent, action, hidden


def small_ensemble(members: int = 3, seed: int = 0) -> EnsembleDynamics:
    torch.manual_seed(seed)
    return EnsembleDynamics(members, 8, CHOICES, 16, action_embed_dim=4)


def test_the_ensembles_prediction_is_the_mean_of_its_members_predictions() -> None:
    ensemble = small_ensemble()
    latent, action, hidden = inputs(ensemble)
    members, members_hidden = ensemble.predict_members(latent, action, hidden)
    mean, next_hidden = ensemble(latent, action, hidden)
    assert members.shape == (3, 3, 8)
    assert mean.shape == (3, 8) and next_hidden.shape == (3, 48)
    torch.testing.assert_close(mean, members.mean(dim=0))
    torch.testing.assert_close(next_hidden, members_hidden)


def test_each_member_runs_on_its_own_slice_of_the_concatenated_hidden_state() -> None:
    ensemble = small_ensemble()
    latent, action, hidden = inputs(ensemble)
    members, next_hidden = ensemble.predict_members(latent, action, hidden)
    for k, net in enumerate(ensemble.nets):
        state = hidden[:, 16 * k : 16 * (k + 1)]
        predicted, next_state = net(latent, action, state)
        torch.testing.assert_close(members[k], predicted)
        torch.testing.assert_close(next_hidden[:, 16 * k : 16 * (k + 1)], next_state)


def test_members_start_from_different_initialisations() -> None:
    ensemble = small_ensemble()
    first, second, third = (dict(net.named_parameters()) for net in ensemble.nets)
    for name, value in first.items():
        assert not torch.equal(value, second[name]), name
        assert not torch.equal(value, third[name]), name
    with torch.no_grad():
        members, _ = ensemble.predict_members(*inputs(ensemble))
    assert float(disagreement(members)) > 0, "fresh members disagree"


def test_a_seeded_build_gives_the_same_ensemble_again() -> None:
    one, two = small_ensemble(seed=5), small_ensemble(seed=5)
    for (key, a), (other, b) in zip(
        one.state_dict().items(), two.state_dict().items(), strict=True
    ):
        assert key == other and torch.equal(a, b), key


def test_an_ensemble_of_one_builds_the_very_forward_dynamics_of_before() -> None:
    """Same class, parameter names and values under one seed: old checkpoints still load."""
    preset = world_model_size("small")
    torch.manual_seed(11)
    built = build_dynamics("small", CHOICES, ensemble=1)
    after_built = torch.random.get_rng_state()
    torch.manual_seed(11)
    before = ForwardDynamics(preset.latent_dim, CHOICES, preset.hidden_dim, preset.action_embed_dim)
    assert type(built) is ForwardDynamics
    assert list(built.state_dict()) == list(before.state_dict())
    for key, value in before.state_dict().items():
        assert torch.equal(built.state_dict()[key], value), key
    assert torch.equal(after_built, torch.random.get_rng_state()), "the same draws, no more"
    torch.manual_seed(11)
    default = build_dynamics("small", CHOICES)
    assert all(
        torch.equal(a, b)
        for a, b in zip(default.state_dict().values(), built.state_dict().values(), strict=True)
    )


def test_an_ensemble_of_several_has_the_single_models_interface() -> None:
    ensemble = build_dynamics("small", CHOICES, ensemble=3)
    preset = world_model_size("small")
    assert isinstance(ensemble, EnsembleDynamics)
    assert ensemble.members == 3
    assert ensemble.latent_dim == preset.latent_dim
    assert ensemble.hidden_dim == 3 * preset.hidden_dim
    assert ensemble.action_choices == tuple(CHOICES)
    hidden = ensemble.initial_hidden(2)
    assert hidden.shape == (2, 3 * preset.hidden_dim) and not hidden.any()
    single = ForwardDynamics(preset.latent_dim, CHOICES, preset.hidden_dim, preset.action_embed_dim)
    assert sum(p.numel() for p in ensemble.parameters()) == 3 * sum(
        p.numel() for p in single.parameters()
    )


@pytest.mark.parametrize("ensemble", [0, -2, 2.5, True, "3", None])
def test_an_ensemble_size_that_is_not_a_whole_number_names_the_key(ensemble: object) -> None:
    with pytest.raises(ValueError, match=r"model\.models\.dynamics\.ensemble=.*expected 1"):
        build_dynamics("small", CHOICES, ensemble=ensemble)  # type: ignore[arg-type]


def test_an_ensemble_class_of_one_member_is_refused() -> None:
    with pytest.raises(ValueError, match=r"members=1: expected a whole number >= 2"):
        EnsembleDynamics(1, 8, CHOICES, 16)


def test_a_hidden_state_of_another_width_is_refused_with_both_shapes() -> None:
    ensemble = small_ensemble()
    latent, action, _ = inputs(ensemble)
    with pytest.raises(ValueError, match=r"\(B, 48\) \(3 x 16\), got \(3, 16\)"):
        ensemble(latent, action, torch.zeros(3, 16))


def test_a_snapshot_of_the_gate_exposes_predict_members_and_initial_hidden() -> None:
    ensemble = small_ensemble()
    assert inference_methods(ensemble) == {"forward", "initial_hidden", "predict_members"}
    gate = ModelGate({"dynamics": ensemble})
    latent, action, hidden = inputs(ensemble)
    with torch.no_grad():
        expected, _ = ensemble.predict_members(latent, action, hidden)
    with gate.inference.snapshot() as models:
        dynamics = models["dynamics"]
        assert dynamics.initial_hidden(2).shape == (2, 48)
        members, next_hidden = dynamics.predict_members(latent, action, hidden)
        mean, _ = dynamics(latent, action, hidden)
    torch.testing.assert_close(members, expected)
    torch.testing.assert_close(mean, expected.mean(dim=0))
    assert next_hidden.shape == (3, 48)


def test_disagreement_is_the_variance_about_the_members_mean() -> None:
    """So the members' mean squared error is the mean prediction's plus the disagreement."""
    generator = torch.Generator().manual_seed(3)
    predictions = torch.randn(4, 2, 5, generator=generator)
    target = torch.randn(2, 5, generator=generator)
    mean = predictions.mean(dim=0)
    expected = ((predictions - mean).square().sum(dim=0) / 4).mean()
    torch.testing.assert_close(disagreement(predictions), expected)
    members_error = (predictions - target).square().mean()
    torch.testing.assert_close(
        members_error, (mean - target).square().mean() + disagreement(predictions)
    )
    assert float(disagreement(predictions[:1].expand(4, -1, -1))) == 0.0, "agreement is 0"


def test_the_policy_reads_the_ensembles_whole_memory() -> None:
    ensemble = build_dynamics("small", CHOICES, ensemble=3)
    policy = build_policy("small", CHOICES, dynamics_ensemble=3)
    latent = torch.zeros(2, ensemble.latent_dim)
    logits, value = policy(latent, ensemble.initial_hidden(2))
    assert value.shape == (2,) and [part.shape[-1] for part in logits] == CHOICES
    single = build_policy("small", CHOICES)
    with pytest.raises(RuntimeError):
        single(latent, ensemble.initial_hidden(2))
    with pytest.raises(ValueError, match=r"dynamics_ensemble=0: .*model\.models\.dynamics"):
        build_policy("small", CHOICES, dynamics_ensemble=0)


def test_the_world_model_config_builds_an_ensemble_and_a_policy_that_fits_it() -> None:
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        default = compose("launch")
        cfg = compose("launch", overrides=["model.models.dynamics.ensemble=3"])
    assert default.model.models.dynamics.ensemble == 1
    assert type(instantiate(default.model.models.dynamics)) is ForwardDynamics
    dynamics = instantiate(cfg.model.models.dynamics)
    policy = instantiate(cfg.model.models.policy)
    assert isinstance(dynamics, EnsembleDynamics) and dynamics.members == 3
    logits, _ = policy(torch.zeros(1, dynamics.latent_dim), dynamics.initial_hidden(1))
    assert [part.shape[-1] for part in logits] == CHOICES
