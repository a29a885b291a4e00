"""Which methods of a model the inference thread may call.

The inference side of the model gate runs ``forward`` (through ``model(...)``) and the
methods a model declares with :func:`inference_method`, nothing else: ``train()``,
``load_state_dict()``, ``parameters()`` and every other method of ``nn.Module`` would let
the reading thread change, or reach into, the copy it only reads. A declared method must
be a pure function of its arguments and the parameters, like ``forward``.

Example:
    >>> from torch import nn
    >>> class Dynamics(nn.Module):
    ...     @inference_method
    ...     def initial_hidden(self, batch_size: int) -> torch.Tensor:
    ...         return torch.zeros(batch_size, 8)
    >>> sorted(inference_methods(Dynamics()))
    ['forward', 'initial_hidden']
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import torch  # noqa: F401  (used by the docstring example)
from torch import nn

F = TypeVar("F", bound=Callable[..., object])

_MARK = "__ami_inference_method__"


def inference_method(method: F) -> F:
    """Declare ``method`` callable from the inference thread (it must not change the model)."""
    setattr(method, _MARK, True)
    return method


def inference_methods(module: nn.Module) -> frozenset[str]:
    """``forward`` and every method of ``module``'s class marked with :func:`inference_method`."""
    names = {"forward"}
    for klass in type(module).__mro__:
        for name, value in vars(klass).items():
            if getattr(value, _MARK, False):
                names.add(name)
    return frozenset(names)
