"""Keep an optimizer on the training copies of its models, across every switch.

Reference switching swaps which module trains. The optimizer must follow, or its next
``step()`` would write into the copy the inference thread reads. Two ways:

- **rebind** (the optimizers of :data:`REBINDABLE`, exactly those types): their only
  references to parameters are ``param_groups`` and the keys of ``state``, so both are
  re-pointed in place. Cheap, and wrappers that share those objects (Fabric's) follow.
- **rebuild** (every other optimizer, user optimizers included): a new optimizer is
  built over the new parameters by the owner's factory, and the old one's
  ``state_dict()`` is loaded into it. Anything the old one kept elsewhere (LBFGS's
  parameter list, a user optimizer's own caches) goes with the old object, so the
  result is right without knowing the optimizer's insides.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import cast

import torch
from torch import nn
from torch.optim import Optimizer

REBINDABLE: frozenset[type[Optimizer]] = frozenset(
    {
        torch.optim.SGD,
        torch.optim.Adam,
        torch.optim.AdamW,
        torch.optim.Adamax,
        torch.optim.Adagrad,
        torch.optim.Adadelta,
        torch.optim.RMSprop,
        torch.optim.Rprop,
        torch.optim.NAdam,
        torch.optim.RAdam,
        torch.optim.ASGD,
    }
)
"""Optimizer types known to reference parameters only through ``param_groups`` and
``state``. Subclasses are not included: they may keep references of their own."""

ParameterMap = Mapping[torch.Tensor, nn.Parameter]
"""Old training parameter -> the parameter that trains in its place after a switch."""

OptimizerFactory = Callable[[Sequence[nn.Parameter]], Optimizer]
"""Builds an optimizer over the given parameters (wrapped, e.g. by Fabric, if needed)."""


def raw_optimizer(optimizer: Optimizer) -> Optimizer:
    """The optimizer inside a wrapper such as Fabric's, or the optimizer itself."""
    inner = getattr(optimizer, "optimizer", None)
    return inner if isinstance(inner, Optimizer) else optimizer


def rebind_in_place(optimizer: Optimizer, mapping: ParameterMap) -> None:
    """Re-point ``param_groups`` and ``state`` of a raw optimizer; unmapped ones stay."""
    for group in optimizer.param_groups:
        group["params"] = [mapping.get(param, param) for param in group["params"]]
    state = optimizer.state
    moved: dict[torch.Tensor, object] = {
        new: state.pop(old) for old, new in mapping.items() if old in state
    }
    state.update(moved)


class BoundOptimizer:
    """An optimizer over training copies, and how to keep it on them after a switch.

    Args:
        optimizer: The optimizer, possibly wrapped (e.g. by ``fabric.setup_optimizers``).
        rebuild: Builds an equivalent optimizer over new parameters; needed unless the
            raw optimizer's type is in :data:`REBINDABLE`.

    Raises:
        TypeError: The optimizer can be neither rebound nor rebuilt.
    """

    def __init__(self, optimizer: Optimizer, rebuild: OptimizerFactory | None = None) -> None:
        kind = type(raw_optimizer(optimizer))
        if kind not in REBINDABLE and rebuild is None:
            raise TypeError(
                f"{kind.__name__} may keep parameter references that a model switch cannot "
                "see; give BoundOptimizer a rebuild factory (Trainer does, from "
                "configure_optimizer)"
            )
        self._optimizer = optimizer
        self._rebuild = rebuild
        self.rebuilds = 0
        """How many times the optimizer was rebuilt rather than rebound."""

    @property
    def optimizer(self) -> Optimizer:
        """The current optimizer object (a new one after each rebuild)."""
        return self._optimizer

    @property
    def parameters(self) -> list[torch.Tensor]:
        """The parameters it steps, in ``param_groups`` order."""
        raw = raw_optimizer(self._optimizer)
        return [param for group in raw.param_groups for param in group["params"]]

    def follow(self, mapping: ParameterMap) -> None:
        """Move onto the parameters that replace the old ones in ``mapping``."""
        if not any(param in mapping for param in self.parameters):
            return
        raw = raw_optimizer(self._optimizer)
        if type(raw) in REBINDABLE:
            rebind_in_place(raw, mapping)
            return
        assert self._rebuild is not None  # checked in __init__
        state = self._optimizer.state_dict()
        moved = [mapping.get(param, param) for param in self.parameters]
        replacement = self._rebuild(cast(list[nn.Parameter], moved))
        try:
            replacement.load_state_dict(state)
        except (ValueError, KeyError) as error:
            raise ValueError(
                f"rebuilding {type(raw).__name__} after a model switch: its factory made an "
                f"optimizer whose parameter groups do not match the old one's ({error}); "
                "configure_optimizer must build the same groups from the same parameters"
            ) from error
        self._optimizer = replacement
        self.rebuilds += 1
