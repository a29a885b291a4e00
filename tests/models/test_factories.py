"""The model factories follow the observation: convolutions for images, an MLP for vectors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import DictConfig

import ami.experiment  # noqa: F401  (registers the resolvers, as scripts/launch.py does)
from ami.models.nets import (
    ForwardDynamics,
    ImageDecoder,
    ImageEncoder,
    PolicyValue,
    VectorDecoder,
    VectorEncoder,
    build_decoder,
    build_dynamics,
    build_encoder,
)

CONF = Path(__file__).resolve().parents[2] / "conf"

# Parameter counts of the built-in world's models before the factories learnt vectors:
# encoder, decoder, dynamics, policy (84x84 images, actions [3, 3, 3, 2, 2]).
SIM_COUNTS = {
    "small": {"encoder": 210256, "decoder": 211603, "dynamics": 114728, "policy": 43406},
    "medium": {"encoder": 1248032, "decoder": 1250595, "dynamics": 1699792, "policy": 267790},
}
SIM_CLASSES = {
    "encoder": ImageEncoder,
    "decoder": ImageDecoder,
    "dynamics": ForwardDynamics,
    "policy": PolicyValue,
}


def compose_launch(*overrides: str) -> DictConfig:
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("launch", overrides=list(overrides))


def models_of(cfg: DictConfig) -> dict[str, torch.nn.Module]:
    return {str(name): instantiate(node) for name, node in cfg.model.models.items()}


def count(module: torch.nn.Module) -> int:
    return sum(parameter.numel() for parameter in module.parameters())


@pytest.mark.parametrize("size", sorted(SIM_COUNTS))
def test_the_built_in_worlds_models_are_the_same_classes_and_sizes_as_before(size: str) -> None:
    models = models_of(compose_launch(f"model.size={size}"))
    assert {name: type(module) for name, module in models.items()} == SIM_CLASSES
    assert {name: count(module) for name, module in models.items()} == SIM_COUNTS[size]


def test_interaction_height_and_width_still_size_the_image_models() -> None:
    models = models_of(compose_launch("interaction.height=64", "interaction.width=96"))
    encoder, decoder = models["encoder"], models["decoder"]
    assert isinstance(encoder, ImageEncoder) and (encoder.height, encoder.width) == (64, 96)
    assert (count(encoder), count(decoder)) == (206160, 207443)  # as before the change
    assert decoder(encoder(torch.rand(2, 3, 64, 96))).shape == (2, 3, 64, 96)


def test_a_vector_world_gets_mlps_that_round_trip_its_vectors() -> None:
    models = models_of(compose_launch("interaction=gym", "interaction.env_id=CartPole-v1"))
    encoder, decoder = models["encoder"], models["decoder"]
    assert isinstance(encoder, VectorEncoder) and isinstance(decoder, VectorDecoder)
    latent = encoder(torch.randn(5, 4))
    assert latent.shape == (5, 64)
    assert decoder(latent).shape == (5, 4)
    assert models["dynamics"].action_choices == (2,)  # type: ignore[union-attr]


def test_a_pixel_gym_world_gets_convolutions_of_its_image_size() -> None:
    models = models_of(compose_launch("interaction=gym", "interaction.env_id=ami/Grid-v0"))
    encoder = models["encoder"]
    assert isinstance(encoder, ImageEncoder) and (encoder.height, encoder.width) == (48, 48)
    assert isinstance(models["decoder"], ImageDecoder)


def test_the_vector_nets_learn_to_reconstruct_vectors() -> None:
    torch.manual_seed(0)
    encoder = build_encoder("small", observation_shape=[4])
    decoder = build_decoder("small", observation_shape=[4])
    data = torch.randn(64, 4) * torch.tensor([1.0, 2.0, 0.2, 3.0])
    parameters = [*encoder.parameters(), *decoder.parameters()]
    optimizer = torch.optim.Adam(parameters, lr=3e-3)
    losses = []
    for _ in range(300):
        loss = F.mse_loss(decoder(encoder(data)), data)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.05 * losses[0]


def test_a_vector_of_the_wrong_size_is_refused_with_both_shapes() -> None:
    encoder = build_encoder("small", observation_shape=[4])
    with pytest.raises(ValueError, match=r"expected vectors of shape \(B, 4\), got \(2, 5\)"):
        encoder(torch.zeros(2, 5))


def test_an_observation_shape_of_another_rank_is_refused_naming_the_key() -> None:
    with pytest.raises(ValueError, match=r"interaction\.observation_shape=\[4, 4\]: .*image"):
        build_encoder("small", observation_shape=[4, 4])


def test_an_image_too_small_names_the_interaction_key() -> None:
    with pytest.raises(ValueError, match=r"interaction\.height=8: an image side of 8"):
        build_decoder("small", observation_shape=[3, 8, 64])


def test_continuous_actions_are_refused_saying_what_runs_instead() -> None:
    with pytest.raises(ValueError, match=r"interaction\.action_choices=null.*agent=random model"):
        build_dynamics("small", action_choices=None)
