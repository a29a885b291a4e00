"""Any installed Gymnasium environment as a world: ``interaction=gym interaction.env_id=<id>``.

Gymnasium speaks numpy arrays and its own spaces; the runtime speaks named modalities
of tensors (:mod:`ami.interaction.spaces`). This module translates once, at build,
from the env's declared spaces, and refuses what it cannot translate with the space
printed, so that nothing is guessed at run time:

- observations: a rank-1 ``Box`` -> modality ``vector`` (float32, its bounds); a
  ``uint8`` ``Box`` of shape ``(H, W, C)`` -> modality ``image``, float ``(C, H, W)``
  in ``[0, 1]`` like a camera's; a ``Dict`` of those -> one modality per key;
- actions: ``Discrete(n)`` -> ``MultiDiscrete((n,))``; ``MultiDiscrete`` as it is;
  ``Box`` -> a float32 :class:`~ami.interaction.spaces.Box` (with per-dimension bounds
  presented as ``[-1, 1]`` and rescaled into the env's, since our boxes have one range).

Episodes end in the env (terminated, or truncated by its time limit); the world starts
the next one itself, so the agent never sees an end: the next observation is the new
episode's first, and :meth:`GymEnvironment.broke_continuity` says so once, which
starts a new segment (no sequence spans two episodes). Rewards and episode ends go
out through :meth:`GymEnvironment.feedback`; the runtime charts them
(``inference/world/episode_return``...).

Gymnasium is optional (``pip install -e '.[gym]'``): it is imported on first use, and
importing this module never needs it. The config keys other groups read (the action
choices, the observation's modality and shape) are resolved from the env's spaces by
:func:`config_value`, which ``${ami.gym:...}`` calls (:mod:`ami.hydra_setup`).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Final

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from typing_extensions import override

from ami.interaction.environment import NO_FEEDBACK, Environment, Feedback
from ami.interaction.spaces import IMAGE, ActionSpace, Box, MultiDiscrete, Observation

logger = logging.getLogger(__name__)

VECTOR: Final = "vector"
"""The modality of a rank-1 observation."""

INSTALL_HINT: Final = "interaction=gym needs Gymnasium: pip install -e '.[gym]'"

_UNBOUNDED: Final = float(np.finfo(np.float32).max)
"""Gymnasium writes "no bound" as float32's largest value as often as infinity."""


def gymnasium() -> ModuleType:
    """The ``gymnasium`` module, with this project's own envs registered (``ami/Grid-v0``).

    Raises:
        ImportError: Gymnasium is not installed; the message says how to install it.
    """
    try:
        import gymnasium as gym
    except ImportError as error:
        raise ImportError(f"{INSTALL_HINT} ({error})") from error
    from ami.interaction.worlds.gym_pixels import register

    register()
    return gym


def make_env(env_id: str, max_episode_steps: int | None, make_kwargs: Mapping[str, Any]) -> Any:
    """``gymnasium.make`` with errors that name the config key they came from.

    Raises:
        ValueError: Unknown id, missing dependency, a window asked for, bad arguments.
    """
    gym = gymnasium()
    if make_kwargs.get("render_mode") == "human":
        raise ValueError(
            f"interaction.environment.render_mode='human' opens a window for {env_id}; "
            "the runtime has no display to give it: leave render_mode unset (or rgb_array)"
        )
    kwargs = dict(make_kwargs)
    if max_episode_steps is not None:
        kwargs["max_episode_steps"] = int(max_episode_steps)
    try:
        return gym.make(env_id, **kwargs)
    except (gym.error.Error, ImportError, TypeError, ValueError) as error:
        raise ValueError(
            f"interaction.env_id={env_id!r}: Gymnasium could not make it: "
            f"{type(error).__name__}: {error}"
        ) from None


def _bound(value: float) -> float:
    return math.copysign(math.inf, value) if abs(value) >= _UNBOUNDED else float(value)


def _refuse(env_id: str, what: str, space: object, accepted: str) -> ValueError:
    return ValueError(
        f"interaction.env_id={env_id!r}: its {what} {space} is not supported; {accepted}"
    )


_OBSERVATIONS_ACCEPTED = (
    "observations must be a Box of rank 1 (modality 'vector'), a uint8 Box of shape "
    "(H, W, C) (modality 'image') or a Dict of those (one modality per key); register the "
    "env wrapped to give one (e.g. in gymnasium.wrappers.FlattenObservation)"
)


@dataclass(frozen=True)
class _Modality:
    """How one Gymnasium observation entry becomes one modality's tensor."""

    space: Box
    image: bool

    def convert(self, value: Any) -> torch.Tensor:
        if self.image:  # (H, W, C) uint8 -> (C, H, W) in [0, 1]
            pixels = torch.from_numpy(np.ascontiguousarray(value, dtype=np.uint8))
            return pixels.permute(2, 0, 1).contiguous().float().div_(255.0)
        return torch.from_numpy(np.array(value, dtype=np.float32).reshape(self.space.shape))


def _modality(env_id: str, key: str | None, space: Any) -> _Modality:
    gym = gymnasium()
    where = "observation space" if key is None else f"observation {key!r}:"
    if not isinstance(space, gym.spaces.Box):
        raise _refuse(env_id, where, space, _OBSERVATIONS_ACCEPTED)
    shape = tuple(int(size) for size in space.shape)
    if len(shape) == 1:
        low, high = _bound(float(np.min(space.low))), _bound(float(np.max(space.high)))
        return _Modality(Box(shape, low, high, torch.float32), image=False)
    if len(shape) == 3 and space.dtype == np.uint8:
        height, width, channels = shape
        return _Modality(Box((channels, height, width), 0.0, 1.0, torch.float32), image=True)
    raise _refuse(env_id, where, space, _OBSERVATIONS_ACCEPTED)


def _modalities(env_id: str, space: Any) -> dict[str, _Modality]:
    """Modality name -> its translation, in the env's order."""
    gym = gymnasium()
    if isinstance(space, gym.spaces.Dict):
        return {str(key): _modality(env_id, str(key), child) for key, child in space.items()}
    modality = _modality(env_id, None, space)
    return {IMAGE if modality.image else VECTOR: modality}


_ACTIONS_ACCEPTED = (
    "actions must be Discrete, MultiDiscrete (one row of categories) or a Box with "
    "finite bounds or one range for every dimension"
)


@dataclass(frozen=True)
class _Actions:
    """How an action tensor of :attr:`space` becomes the Gymnasium env's action."""

    space: ActionSpace
    convert: Callable[[torch.Tensor], Any]


def _actions(env_id: str, space: Any) -> _Actions:
    gym = gymnasium()
    if isinstance(space, gym.spaces.Discrete):
        start = int(space.start)
        return _Actions(MultiDiscrete((int(space.n),)), lambda action: int(action[0]) + start)
    if isinstance(space, gym.spaces.MultiDiscrete) and space.nvec.ndim == 1:
        starts = np.asarray(space.start, dtype=space.dtype)
        return _Actions(
            MultiDiscrete(tuple(int(n) for n in space.nvec)),
            lambda action: action.numpy().astype(space.dtype) + starts,
        )
    if isinstance(space, gym.spaces.Box) and np.issubdtype(space.dtype, np.floating):
        shape = tuple(int(size) for size in space.shape)
        low, high = np.asarray(space.low, np.float64), np.asarray(space.high, np.float64)
        dtype = space.dtype
        if low.min() == low.max() and high.min() == high.max():
            box = Box(shape, _bound(float(low.min())), _bound(float(high.max())), torch.float32)
            return _Actions(box, lambda action: action.numpy().astype(dtype))
        if np.isfinite(low).all() and np.isfinite(high).all():
            # One range for all dimensions: [-1, 1] here, each dimension's own in the env.
            def rescale(action: torch.Tensor) -> Any:
                unit = action.numpy().astype(np.float64)
                return (low + (unit + 1.0) * 0.5 * (high - low)).astype(dtype)

            return _Actions(Box(shape, -1.0, 1.0, torch.float32), rescale)
    raise _refuse(env_id, "action space", space, _ACTIONS_ACCEPTED)


class GymEnvironment(Environment):
    """A Gymnasium environment, stepped once per agent step, reset at each episode's end.

    The env is made here, not in :meth:`setup`, so its spaces are known when the
    experiment is built and checked. The first reset uses the run's seed; later resets
    pass none, so the env's own generator carries on from that seed (the episodes of a
    seeded run are reproducible, and differ from each other).

    Checkpoints: a Gymnasium env cannot be saved in general (its state lives in its own
    objects, often in C), so :meth:`state_dict` keeps only the episode counter, and a
    resumed run starts a new episode (logged once, naming the env), seeded with the
    run's seed plus the episodes begun before, so that it neither repeats the first
    episode nor depends on the machine.

    Args:
        env_id: A registered id (``CartPole-v1``, ``ami/Grid-v0``, or
            ``module:Id`` to import the module that registers it).
        seed: Seed of the first reset.
        max_episode_steps: Overrides the env's own time limit (truncation); None keeps it.
        **make_kwargs: Passed to ``gymnasium.make`` (e.g. ``continuous=True``).
            ``render_mode="human"`` is refused: no window can open.
    """

    time_scalable = True  # each step is one env step, however fast they come
    resumes_episodes = False  # an env's state cannot be saved: a resume starts anew

    def __init__(
        self, env_id: str, seed: int, max_episode_steps: int | None = None, **make_kwargs: Any
    ) -> None:
        self.env_id = str(env_id)
        self.seed = int(seed)
        self.env = make_env(self.env_id, max_episode_steps, make_kwargs)
        try:
            self._modalities = _modalities(self.env_id, self.env.observation_space)
            self._actions = _actions(self.env_id, self.env.action_space)
        except ValueError:
            self.env.close()
            raise
        self.episodes = 0
        """Episodes begun (resets), this run and the runs it resumes."""
        self._observation: Observation | None = None
        self._jumped = False
        self._feedback = NO_FEEDBACK

    @override
    def observation_space(self) -> dict[str, Box]:
        return {name: modality.space for name, modality in self._modalities.items()}

    @override
    def action_space(self) -> ActionSpace:
        return self._actions.space

    @override
    def setup(self) -> None:
        self._reset(seed=self.seed + self.episodes)

    def _reset(self, seed: int | None = None) -> None:
        observation, _ = self.env.reset(seed=seed)
        self._observation = self._convert(observation)
        self.episodes += 1

    def _convert(self, observation: Any) -> Observation:
        if len(self._modalities) == 1 and not isinstance(observation, Mapping):
            ((name, modality),) = self._modalities.items()
            return {name: modality.convert(observation)}
        return {
            name: modality.convert(observation[name]) for name, modality in self._modalities.items()
        }

    @override
    def observe(self) -> Observation:
        if self._observation is None:
            raise RuntimeError("GymEnvironment.observe before setup()")
        return self._observation

    @override
    def affect(self, action: torch.Tensor) -> None:
        self._actions.space.check(f"{self.env_id} action", action)
        observation, reward, terminated, truncated, _ = self.env.step(
            self._actions.convert(action.detach().cpu())
        )
        self._feedback = Feedback(float(reward), bool(terminated), bool(truncated))
        if terminated or truncated:
            self._reset()  # unseeded: the env's generator carries on
            self._jumped = True
        else:
            self._observation = self._convert(observation)

    @override
    def feedback(self) -> Feedback:
        return self._feedback

    @override
    def broke_continuity(self) -> bool:
        jumped, self._jumped = self._jumped, False
        return jumped

    @override
    def teardown(self) -> None:
        self.env.close()

    @override
    def state_dict(self) -> dict[str, Any]:
        return {"episodes": self.episodes}

    @override
    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.episodes = int(state["episodes"])
        logger.info(
            "%s cannot be saved (a Gymnasium env): the resumed run starts a new episode, number %d",
            self.env_id,
            self.episodes + 1,
        )


@dataclass(frozen=True)
class GymSpaces:
    """What the config needs to know of an env before anything is built."""

    observation: dict[str, Box]
    action: ActionSpace


_SPACES: dict[str, GymSpaces] = {}
"""Per env id and make arguments: an env is made once per process to read its spaces."""

_NOT_MAKE_ARGUMENTS: Final = frozenset({"_target_", "_convert_", "_partial_", "seed", "env_id"})


def gym_spaces(env_id: str, make_kwargs: Mapping[str, Any] | None = None) -> GymSpaces:
    """The translated spaces of ``env_id`` made with ``make_kwargs`` (cached)."""
    kwargs = dict(make_kwargs or {})
    kwargs.pop("max_episode_steps", None)  # a time limit changes no space
    key = json.dumps([env_id, kwargs], sort_keys=True, default=str)
    spaces = _SPACES.get(key)
    if spaces is None:
        env = make_env(env_id, None, kwargs)
        try:
            modalities = _modalities(env_id, env.observation_space)
            spaces = GymSpaces(
                {name: m.space for name, m in modalities.items()},
                _actions(env_id, env.action_space).space,
            )
        finally:
            env.close()
        _SPACES[key] = spaces
    return spaces


def config_value(field: str, environment: Mapping[str, Any], modality: str | None = None) -> Any:
    """``${ami.gym:<field>,${interaction.environment}[,<modality>]}``: a key from the env.

    The interaction keys other groups read (``interaction.action_choices`` for the
    models, ``interaction.modality`` and ``interaction.observation_shape`` for the
    encoders, ``interaction.action_names`` for the curiosity agent's charts) come
    from the env's spaces, so that ``interaction.env_id=<id>`` is the only setting.

    Args:
        field: ``modality`` (the world model's: the only one, else ``image`` if there
            is one, else the first), ``observation_shape``, ``height``, ``width``
            (an image modality's; None for a vector), ``image_dtype`` (how buffers
            store ``image``: float16 if the world model learns from it, else None),
            ``action_choices`` (None for a Box), ``action_names`` (``action_0``, ...
            per category).
        environment: The ``interaction.environment`` node: ``env_id`` and the make
            arguments.
        modality: The modality ``observation_shape``, ``height`` and ``width`` describe.
    """
    if isinstance(environment, DictConfig):
        environment = OmegaConf.to_container(environment, resolve=True)  # type: ignore[assignment]
    arguments = {str(key): value for key, value in environment.items()}
    make_kwargs = {k: v for k, v in arguments.items() if k not in _NOT_MAKE_ARGUMENTS}
    spaces = gym_spaces(str(arguments["env_id"]), make_kwargs)
    action = spaces.action
    if field == "modality":
        names = list(spaces.observation)
        return names[0] if len(names) == 1 or IMAGE not in names else IMAGE
    if field == "action_choices":
        return list(action.choices) if isinstance(action, MultiDiscrete) else None
    if field == "action_names":
        count = (
            len(action.choices) if isinstance(action, MultiDiscrete) else math.prod(action.shape)
        )
        return [f"action_{index}" for index in range(count)]
    if field == "image_dtype":
        return "float16" if modality == IMAGE else None
    if field in ("observation_shape", "height", "width"):
        if modality not in spaces.observation:
            raise ValueError(
                f"interaction.modality={modality!r}: {arguments['env_id']} observes "
                f"{sorted(spaces.observation)}"
            )
        shape = spaces.observation[modality].shape
        if field == "observation_shape":
            return list(shape)
        if len(shape) != 3:
            return None
        return shape[1] if field == "height" else shape[2]
    raise ValueError(
        f"${{ami.gym:{field},...}}: no such field; use one of modality, observation_shape, "
        "height, width, image_dtype, action_choices, action_names"
    )
