"""Refuse models that share a parameter or buffer: the switch cannot keep them apart.

Each model is deep-copied into a training and an inference copy, separately. Two models
built around one submodule (a common encoder trunk, a tied embedding) would share it in
the first training copies and no longer after the first switch, and from then on one
model's optimizer would step tensors the other model publishes to the inference thread.
Sharing inside one model is fine: a model is copied and switched as a whole.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import torch
from torch import nn


def tensor_storages(module: nn.Module) -> Iterator[tuple[str, int]]:
    """``(name, storage address)`` of every non-empty parameter and buffer of ``module``."""
    named: list[tuple[str, torch.Tensor]] = [
        *module.named_parameters(remove_duplicate=False),
        *module.named_buffers(remove_duplicate=False),
    ]
    for name, tensor in named:
        if tensor.numel() > 0 and tensor.device.type != "meta":
            yield name, tensor.untyped_storage().data_ptr()


def refuse_shared_tensors(modules: Mapping[str, nn.Module]) -> None:
    """Raise if two of ``modules`` hold the same tensor (or views of one storage).

    Raises:
        ValueError: Naming both models and the shared tensor under each name.
    """
    owners: dict[int, tuple[str, str]] = {}
    for model, module in modules.items():
        for tensor, address in tensor_storages(module):
            first = owners.setdefault(address, (model, tensor))
            if first[0] != model:
                raise ValueError(
                    f"models {first[0]!r} and {model!r} share a tensor: "
                    f"{first[0]}.{first[1]} is stored in the same memory as {model}.{tensor}. "
                    "Each model is copied and switched on its own, so a shared part would "
                    "be trained through one model and published through the other. Put the "
                    "shared part and its users into one model, or give each model its own copy."
                )
