"""The unit of experience: one inference step's named tensors."""

from collections.abc import Mapping

import torch

Step = Mapping[str, torch.Tensor]
"""One step's data, e.g. ``{"observation": (C, H, W) float, "action": (5,) int64}``.

Every step sent through one collector carries the same keys with the same shapes.
"""
