"""The neural networks of the world model and the agent.

Every module here is a pure function of its inputs: recurrent state goes in and comes
out (see :class:`ForwardDynamics`; :class:`EnsembleDynamics` is several of them, for a
disagreement reward), never stays inside, because a
:class:`~ami.models.ModelGate` hands the inference thread a different module object
at every publication. Pick a size with a name::

    encoder = build_encoder("small", height=84, width=84)  # or observation_shape=[4]: an MLP
    dynamics = build_dynamics("small", action_choices=[3, 3, 3, 2, 2])
    policy = build_policy("small", action_choices=[3, 3, 3, 2, 2])
    hidden = dynamics.initial_hidden(1)
    latent = encoder(frame)  # (1, 3, 84, 84) in [0, 1]
    logits, value = policy(latent, hidden)
    action = MultiCategorical(logits).sample()
    predicted_next_latent, hidden = dynamics(latent, action, hidden)
"""

from ami.models.nets.action_embedding import ActionEmbedding
from ami.models.nets.dynamics import EnsembleDynamics, ForwardDynamics, disagreement
from ami.models.nets.factories import (
    DEFAULT_ACTION_CHOICES,
    build_decoder,
    build_dynamics,
    build_encoder,
    build_multimodal_decoder,
    build_multimodal_encoder,
    build_policy,
    build_vae_encoder,
)
from ami.models.nets.image import ImageDecoder, ImageEncoder
from ami.models.nets.multi_categorical import MultiCategorical
from ami.models.nets.multimodal import MultimodalDecoder, MultimodalEncoder
from ami.models.nets.policy import PolicyValue
from ami.models.nets.sizes import WORLD_MODEL_SIZES, WorldModelSize, world_model_size
from ami.models.nets.variational import VariationalEncoder, kl_divergence, reparameterize
from ami.models.nets.vector import VectorDecoder, VectorEncoder

__all__ = [
    "DEFAULT_ACTION_CHOICES",
    "WORLD_MODEL_SIZES",
    "ActionEmbedding",
    "EnsembleDynamics",
    "ForwardDynamics",
    "ImageDecoder",
    "ImageEncoder",
    "MultiCategorical",
    "MultimodalDecoder",
    "MultimodalEncoder",
    "PolicyValue",
    "VariationalEncoder",
    "VectorDecoder",
    "VectorEncoder",
    "WorldModelSize",
    "build_decoder",
    "build_dynamics",
    "build_encoder",
    "build_multimodal_decoder",
    "build_multimodal_encoder",
    "build_policy",
    "build_vae_encoder",
    "disagreement",
    "kl_divergence",
    "reparameterize",
    "world_model_size",
]
