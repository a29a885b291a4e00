"""The unit of experience: one inference step's named tensors."""

from collections.abc import Mapping

import torch

Step = Mapping[str, torch.Tensor]
"""One step's data, e.g. ``{"observation": (C, H, W) float, "action": (5,) int64}``.

Every step sent through one collector carries the same keys with the same shapes.
"""

SEGMENT = "segment"
"""The key under which buffers keep (and samples return) each step's segment id: steps
with equal ids belong to one unbroken run (see :class:`~ami.data.StepCollector`)."""
