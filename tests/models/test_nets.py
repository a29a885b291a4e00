import copy
import math

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from torch import Tensor, nn

from ami.models.nets import (
    WORLD_MODEL_SIZES,
    ActionEmbedding,
    ForwardDynamics,
    ImageDecoder,
    ImageEncoder,
    MultiCategorical,
    PolicyValue,
    VariationalEncoder,
    build_decoder,
    build_dynamics,
    build_encoder,
    build_policy,
    build_vae_encoder,
    kl_divergence,
    reparameterize,
    world_model_size,
)

SIZES = list(WORLD_MODEL_SIZES)
CHOICES = [3, 3, 3, 2, 2]
BATCH = 2


def random_actions(batch: int, choices: list[int], generator: torch.Generator) -> Tensor:
    return torch.stack([torch.randint(0, n, (batch,), generator=generator) for n in choices], 1)


def weighted_sum(*outputs: Tensor) -> Tensor:
    """A loss that reaches every output element with a different weight."""
    generator = torch.Generator().manual_seed(1)
    return sum(
        ((out * torch.randn(out.shape, generator=generator)).sum() for out in outputs),
        torch.tensor(0.0),
    )


def assert_all_grads(module: nn.Module) -> None:
    for name, param in module.named_parameters():
        assert param.grad is not None, f"{name} got no gradient"
        assert torch.isfinite(param.grad).all(), f"{name} has a non-finite gradient"
        assert param.grad.abs().sum() > 0, f"{name} has an all-zero gradient"


def leaves(output: object) -> list[Tensor]:
    if isinstance(output, Tensor):
        return [output]
    assert isinstance(output, tuple)
    return [leaf for item in output for leaf in leaves(item)]


def assert_pure(module: nn.Module, *inputs: Tensor) -> None:
    """Two calls give the same output and leave parameters and buffers unchanged."""
    before = copy.deepcopy(module.state_dict())
    buffers = [buffer.clone() for buffer in module.buffers()]
    first, second = module(*inputs), module(*inputs)
    for a, b in zip(leaves(first), leaves(second), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    after = module.state_dict()
    for key, value in before.items():
        torch.testing.assert_close(after[key], value, rtol=0, atol=0)
    for old, new in zip(buffers, module.buffers(), strict=True):
        torch.testing.assert_close(old, new, rtol=0, atol=0)


@pytest.fixture
def generator() -> torch.Generator:
    return torch.Generator().manual_seed(0)


# --- image encoder / decoder -----------------------------------------------------------


@pytest.mark.parametrize("size", SIZES)
def test_encoder_decoder_shapes_and_grads(size: str, generator: torch.Generator) -> None:
    encoder, decoder = build_encoder(size, 84, 84), build_decoder(size, 84, 84)
    latent_dim = world_model_size(size).latent_dim
    image = torch.rand(BATCH, 3, 84, 84, generator=generator)
    latent = encoder(image)
    assert latent.shape == (BATCH, latent_dim)
    reconstruction = decoder(latent)
    assert reconstruction.shape == (BATCH, 3, 84, 84)
    assert reconstruction.min() >= 0 and reconstruction.max() <= 1
    torch.testing.assert_close(torch.sigmoid(decoder.logits(latent)), reconstruction)
    weighted_sum(reconstruction).backward()
    assert_all_grads(encoder)
    assert_all_grads(decoder)


@pytest.mark.parametrize(("height", "width"), [(64, 96), (96, 128), (64, 64), (17, 23), (16, 16)])
def test_encoder_decoder_any_image_size(
    height: int, width: int, generator: torch.Generator
) -> None:
    encoder, decoder = build_encoder("small", height, width), build_decoder("small", height, width)
    image = torch.rand(BATCH, 3, height, width, generator=generator)
    reconstruction = decoder(encoder(image))
    assert reconstruction.shape == (BATCH, 3, height, width)
    weighted_sum(reconstruction).backward()
    assert_all_grads(encoder)
    assert_all_grads(decoder)


def test_image_too_small_for_the_convs() -> None:
    with pytest.raises(ValueError, match="too small"):
        ImageEncoder(8, 84, 16, [8, 8, 8, 8])
    with pytest.raises(ValueError, match="too small"):
        ImageDecoder(84, 15, 16, [8, 8, 8, 8])


def test_encoder_rejects_images_of_another_size() -> None:
    encoder = build_encoder("small", 84, 84)
    with pytest.raises(ValueError, match=r"\(B, 3, 84, 84\)"):
        encoder(torch.rand(1, 3, 64, 64))


def test_single_channel_images() -> None:
    encoder = ImageEncoder(32, 32, 8, [4, 8], in_channels=1)
    decoder = ImageDecoder(32, 32, 8, [4, 8], out_channels=1)
    assert decoder(encoder(torch.rand(3, 1, 32, 32))).shape == (3, 1, 32, 32)


def test_no_batch_norm_anywhere() -> None:
    modules = [
        build_encoder("small"),
        build_decoder("small"),
        build_vae_encoder("small"),
        build_dynamics("small"),
        build_policy("small"),
    ]
    for module in modules:
        assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in module.modules())


# --- variational encoder -------------------------------------------------------------


@pytest.mark.parametrize("size", SIZES)
def test_vae_shapes_and_grads(size: str, generator: torch.Generator) -> None:
    encoder, decoder = build_vae_encoder(size, 84, 84), build_decoder(size, 84, 84)
    latent_dim = world_model_size(size).latent_dim
    mean, log_var = encoder(torch.rand(BATCH, 3, 84, 84, generator=generator))
    assert mean.shape == log_var.shape == (BATCH, latent_dim)
    sample = reparameterize(mean, log_var, generator)
    assert sample.shape == (BATCH, latent_dim)
    kl = kl_divergence(mean, log_var)
    assert kl.shape == (BATCH,)
    (weighted_sum(decoder(sample)) + kl.sum()).backward()
    assert_all_grads(encoder)


def test_kl_divergence_matches_torch_distributions(generator: torch.Generator) -> None:
    mean, log_var = torch.randn(4, 6, generator=generator), torch.randn(4, 6, generator=generator)
    posterior = torch.distributions.Normal(mean, (0.5 * log_var).exp())
    prior = torch.distributions.Normal(torch.zeros(4, 6), torch.ones(4, 6))
    expected = torch.distributions.kl_divergence(posterior, prior).sum(-1)
    torch.testing.assert_close(kl_divergence(mean, log_var), expected)
    torch.testing.assert_close(kl_divergence(torch.zeros(3, 5), torch.zeros(3, 5)), torch.zeros(3))


def test_reparameterize_is_reproducible_and_has_the_right_moments() -> None:
    mean, log_var = torch.full((20000, 2), 3.0), torch.full((20000, 2), math.log(4.0))
    first = reparameterize(mean, log_var, torch.Generator().manual_seed(7))
    second = reparameterize(mean, log_var, torch.Generator().manual_seed(7))
    torch.testing.assert_close(first, second)
    assert abs(first.mean().item() - 3.0) < 0.05
    assert abs(first.std().item() - 2.0) < 0.05


# --- dynamics ------------------------------------------------------------------------


@pytest.mark.parametrize("size", SIZES)
def test_dynamics_shapes_and_grads(size: str, generator: torch.Generator) -> None:
    dynamics = build_dynamics(size, CHOICES)
    preset = world_model_size(size)
    hidden = dynamics.initial_hidden(BATCH)
    assert hidden.shape == (BATCH, preset.hidden_dim)
    assert not hidden.any()
    latent = torch.randn(BATCH, preset.latent_dim, generator=generator)
    # Two steps, so the recurrent weights see a non-zero hidden state.
    action = random_actions(BATCH, CHOICES, generator)
    predicted, hidden = dynamics(latent, action, hidden)
    predicted, hidden = dynamics(predicted, action, hidden)
    assert predicted.shape == (BATCH, preset.latent_dim)
    assert hidden.shape == (BATCH, preset.hidden_dim)
    weighted_sum(predicted, hidden).backward()
    assert_all_grads(dynamics)


def test_dynamics_output_depends_on_hidden_state_and_action(generator: torch.Generator) -> None:
    dynamics = ForwardDynamics(16, CHOICES, 32, action_embed_dim=4)
    latent = torch.randn(3, 16, generator=generator)
    action = random_actions(3, CHOICES, generator)
    zero = dynamics.initial_hidden(3)
    other = torch.randn(3, 32, generator=generator)
    assert not torch.allclose(dynamics(latent, action, zero)[0], dynamics(latent, action, other)[0])
    changed = action.clone()
    changed[:, 0] = (changed[:, 0] + 1) % CHOICES[0]
    assert not torch.allclose(dynamics(latent, action, zero)[0], dynamics(latent, changed, zero)[0])


def test_dynamics_is_pure(generator: torch.Generator) -> None:
    dynamics = build_dynamics("small", CHOICES)
    latent = torch.randn(3, dynamics.latent_dim, generator=generator)
    action = random_actions(3, CHOICES, generator)
    hidden = torch.randn(3, dynamics.hidden_dim, generator=generator)
    for mode in (True, False):
        dynamics.train(mode)
        assert_pure(dynamics, latent, action, hidden)


def test_dynamics_rejects_actions_with_another_number_of_categories() -> None:
    dynamics = ForwardDynamics(8, CHOICES, 8)
    with pytest.raises(ValueError, match=r"\(B, 5\)"):
        dynamics(torch.zeros(2, 8), torch.zeros(2, 4, dtype=torch.long), dynamics.initial_hidden(2))


def test_action_embedding_gives_each_category_its_own_rows() -> None:
    embedding = ActionEmbedding([2, 3], embed_dim=4)
    out = embedding(torch.tensor([[1, 2]]))
    torch.testing.assert_close(out[0, :4], embedding.table.weight[1])
    torch.testing.assert_close(out[0, 4:], embedding.table.weight[2 + 2])
    with pytest.raises(ValueError, match="at least one category"):
        ActionEmbedding([], 4)


# --- policy --------------------------------------------------------------------------


@pytest.mark.parametrize("size", SIZES)
def test_policy_shapes_and_grads(size: str, generator: torch.Generator) -> None:
    policy = build_policy(size, CHOICES)
    preset = world_model_size(size)
    latent = torch.randn(BATCH, preset.latent_dim, generator=generator)
    hidden = torch.rand(BATCH, preset.hidden_dim, generator=generator)
    logits, value = policy(latent, hidden)
    assert [tuple(t.shape) for t in logits] == [(BATCH, n) for n in CHOICES]
    assert value.shape == (BATCH,)
    weighted_sum(*logits, value).backward()
    assert_all_grads(policy)


def test_policy_starts_close_to_uniform(generator: torch.Generator) -> None:
    policy = PolicyValue(16, 32, CHOICES, width=64)
    logits, _ = policy(torch.randn(8, 16, generator=generator) * 10, torch.rand(8, 32))
    entropy = MultiCategorical(logits).entropy()
    maximum = sum(math.log(n) for n in CHOICES)
    assert (entropy > 0.99 * maximum).all()


def test_encoder_decoder_vae_and_policy_are_pure(generator: torch.Generator) -> None:
    image = torch.rand(2, 3, 84, 84, generator=generator)
    policy = build_policy("small", CHOICES)
    preset = world_model_size("small")
    latent = torch.randn(2, preset.latent_dim, generator=generator)
    for mode in (True, False):
        for module, inputs in [
            (build_encoder("small"), (image,)),
            (build_vae_encoder("small"), (image,)),
            (build_decoder("small"), (latent,)),
            (policy, (latent, torch.rand(2, preset.hidden_dim, generator=generator))),
        ]:
            module.train(mode)
            assert_pure(module, *inputs)


def test_a_deep_copy_computes_the_same_function(generator: torch.Generator) -> None:
    # The model gate deep-copies the model; nothing may live outside parameters and buffers.
    dynamics = build_dynamics("small", CHOICES)
    latent = torch.randn(2, dynamics.latent_dim, generator=generator)
    action = random_actions(2, CHOICES, generator)
    hidden = dynamics.initial_hidden(2)
    expected = dynamics(latent, action, hidden)
    with torch.inference_mode():
        actual = copy.deepcopy(dynamics).eval()(latent, action, hidden)
    torch.testing.assert_close(actual, expected)


# --- multi-categorical ---------------------------------------------------------------


def make_logits(batch_shape: tuple[int, ...], generator: torch.Generator) -> list[Tensor]:
    return [torch.randn(*batch_shape, n, generator=generator) for n in CHOICES]


def test_sample_shapes_and_ranges(generator: torch.Generator) -> None:
    distribution = MultiCategorical(make_logits((4000,), generator))
    action = distribution.sample(generator)
    assert action.shape == (4000, len(CHOICES))
    assert action.dtype == torch.int64
    for k, n in enumerate(CHOICES):
        assert set(action[:, k].tolist()) == set(range(n))


def test_sample_follows_the_probabilities(generator: torch.Generator) -> None:
    probs = torch.tensor([0.7, 0.2, 0.1])
    distribution = MultiCategorical([probs.log().expand(20000, 3)])
    action = distribution.sample(generator)[:, 0]
    frequencies = torch.bincount(action, minlength=3).float() / len(action)
    torch.testing.assert_close(frequencies, probs, atol=0.02, rtol=0)


def test_sample_is_reproducible_with_a_generator(generator: torch.Generator) -> None:
    distribution = MultiCategorical(make_logits((64,), generator))
    first = distribution.sample(torch.Generator().manual_seed(3))
    second = distribution.sample(torch.Generator().manual_seed(3))
    torch.testing.assert_close(first, second)


def test_log_prob_and_entropy_match_torch_categoricals(generator: torch.Generator) -> None:
    logits = make_logits((6,), generator)
    distribution = MultiCategorical(logits)
    action = distribution.sample(generator)
    categoricals = [torch.distributions.Categorical(logits=t) for t in logits]
    per_category = torch.stack([c.log_prob(action[:, k]) for k, c in enumerate(categoricals)], 1)
    torch.testing.assert_close(distribution.log_probs_per_category(action), per_category)
    torch.testing.assert_close(distribution.log_prob(action), per_category.sum(1))
    entropies = torch.stack([c.entropy() for c in categoricals], 1)
    torch.testing.assert_close(distribution.entropies(), entropies)
    torch.testing.assert_close(distribution.entropy(), entropies.sum(1))
    modes = torch.stack([t.argmax(-1) for t in logits], 1)
    torch.testing.assert_close(distribution.mode(), modes)


def test_entropy_of_uniform_logits() -> None:
    distribution = MultiCategorical([torch.zeros(3, n) for n in CHOICES])
    expected = torch.full((3,), sum(math.log(n) for n in CHOICES))
    torch.testing.assert_close(distribution.entropy(), expected)
    torch.testing.assert_close(
        distribution.entropies(), torch.tensor([[math.log(n) for n in CHOICES]] * 3)
    )


def test_gradients_are_finite_despite_the_padding(generator: torch.Generator) -> None:
    logits = [t.requires_grad_() for t in make_logits((5,), generator)]
    distribution = MultiCategorical(logits)
    (
        distribution.log_prob(distribution.sample(generator)).sum() + distribution.entropy().sum()
    ).backward()
    for tensor in logits:
        assert tensor.grad is not None
        assert torch.isfinite(tensor.grad).all()
        assert tensor.grad.abs().sum() > 0


def test_works_under_inference_mode_and_with_time_and_batch_dims(
    generator: torch.Generator,
) -> None:
    with torch.inference_mode():
        distribution = MultiCategorical(make_logits((7, 3), generator))
        action = distribution.sample(generator)
        assert action.shape == (7, 3, len(CHOICES))
        assert distribution.log_prob(action).shape == (7, 3)
        assert distribution.entropy().shape == (7, 3)
        assert distribution.entropies().shape == (7, 3, len(CHOICES))
        assert distribution.mode().shape == (7, 3, len(CHOICES))


def test_half_precision_logits_are_scored_in_float32(generator: torch.Generator) -> None:
    distribution = MultiCategorical([t.bfloat16() for t in make_logits((2,), generator)])
    assert distribution.log_prob(distribution.mode()).dtype == torch.float32


def test_rejects_inconsistent_logits_and_actions() -> None:
    with pytest.raises(ValueError, match="leading shape"):
        MultiCategorical([torch.zeros(2, 3), torch.zeros(3, 2)])
    with pytest.raises(ValueError, match="at least one category"):
        MultiCategorical([])
    with pytest.raises(ValueError, match="2 categories"):
        MultiCategorical([torch.zeros(2, 3), torch.zeros(2, 2)]).log_prob(torch.zeros(2, 3).long())


# --- sizes and factories -------------------------------------------------------------


def test_unknown_size_names_the_value_and_the_choices() -> None:
    with pytest.raises(ValueError, match=r"model\.size='huge' is not one of: small, medium, large"):
        world_model_size("huge")
    with pytest.raises(ValueError, match="small, medium, large"):
        build_encoder("huge", 84, 84)


def test_sizes_grow() -> None:
    totals = []
    for size in SIZES:
        modules = [
            build_encoder(size),
            build_decoder(size),
            build_dynamics(size),
            build_policy(size),
        ]
        totals.append(sum(p.numel() for m in modules for p in m.parameters()))
    assert totals == sorted(totals)
    assert totals[0] < 1_000_000


def test_factories_instantiate_from_hydra_configs() -> None:
    config = OmegaConf.create(
        {
            "model": {"size": "small", "height": 64, "width": 96, "actions": [3, 3, 3, 2, 2]},
            "encoder": {
                "_target_": "ami.models.nets.build_encoder",
                "size": "${model.size}",
                "height": "${model.height}",
                "width": "${model.width}",
            },
            "vae": {
                "_target_": "ami.models.nets.build_vae_encoder",
                "size": "small",
                "height": 64,
                "width": 96,
            },
            "decoder": {
                "_target_": "ami.models.nets.build_decoder",
                "size": "small",
                "height": 64,
                "width": 96,
            },
            "dynamics": {
                "_target_": "ami.models.nets.build_dynamics",
                "size": "${model.size}",
                "action_choices": "${model.actions}",
            },
            "policy": {
                "_target_": "ami.models.nets.build_policy",
                "size": "${model.size}",
                "action_choices": "${model.actions}",
            },
        }
    )
    assert isinstance(instantiate(config.encoder), ImageEncoder)
    assert isinstance(instantiate(config.vae), VariationalEncoder)
    assert isinstance(instantiate(config.decoder), ImageDecoder)
    dynamics = instantiate(config.dynamics)
    assert isinstance(dynamics, ForwardDynamics)
    assert dynamics.action_choices == (3, 3, 3, 2, 2)
    policy = instantiate(config.policy)
    assert isinstance(policy, PolicyValue)
    assert policy.action_choices == (3, 3, 3, 2, 2)


def test_dynamics_trains_and_publishes_through_the_model_gate(generator: torch.Generator) -> None:
    from ami.models import BoundOptimizer, ModelGate

    gate = ModelGate({"dynamics": build_dynamics("small", CHOICES)})
    optimizer = torch.optim.AdamW(gate.training_module("dynamics").parameters(), lr=1e-2)
    gate.attach_optimizer(BoundOptimizer(optimizer))
    hidden = torch.randn(2, 128, generator=generator)
    latent = torch.randn(2, world_model_size("small").latent_dim, generator=generator)
    action = random_actions(2, CHOICES, generator)
    with gate.inference.snapshot() as models:
        assert models["dynamics"].initial_hidden(2).shape == (2, 128)
        before, _ = models["dynamics"](latent, action, hidden)
    for _ in range(2):
        predicted, _ = gate.training_module("dynamics")(latent, action, hidden)
        optimizer.zero_grad()
        predicted.square().mean().backward()
        optimizer.step()
        gate.publish()
    with gate.inference.snapshot() as models:
        after, _ = models["dynamics"](latent, action, hidden)
    assert not torch.allclose(before, after)
    with torch.no_grad():
        expected, _ = gate.training_module("dynamics").eval()(latent, action, hidden)
    torch.testing.assert_close(after, expected)
