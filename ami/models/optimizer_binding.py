"""Move an optimizer from one set of parameter tensors to another, state included.

Reference switching swaps which module trains. The optimizer must follow: its
parameter groups must point at the new training parameters, and its per-parameter
state (Adam moments, step counts) must be keyed by them, or the next ``step()`` would
write into the module the inference thread is reading.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch.optim import Optimizer


def rebind_optimizer(
    optimizer: Optimizer, mapping: Mapping[torch.nn.Parameter, torch.nn.Parameter]
) -> None:
    """Replace each old parameter by its new counterpart, in place.

    In-place edits matter: wrappers such as Fabric's optimizer share ``param_groups``
    and ``state`` with the optimizer they wrap.

    Args:
        optimizer: The raw optimizer (not a wrapper).
        mapping: Old parameter -> new parameter. Parameters not in it stay.
    """
    for group in optimizer.param_groups:
        group["params"] = [mapping.get(param, param) for param in group["params"]]
    state = optimizer.state
    moved: dict[torch.Tensor, object] = {
        new: state.pop(old) for old, new in mapping.items() if old in state
    }
    state.update(moved)
