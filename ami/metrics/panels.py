"""Image strips whose panels say what they are: a caption bar above each panel.

A strip of four 84-pixel frames (observation, reconstruction, prediction, the real
next frame) is unreadable without labels: which one is the model's? Each panel gets a
caption bar above it, drawn with OpenCV. The world model's frames are small (64-84
px), narrower than a legible caption, so the whole strip is scaled up by the smallest
integer factor (nearest neighbour: every pixel becomes an exact ``k x k`` block, no
blur) at which every caption fits its panel.

Example:
    >>> strip = labelled_strip([frame, decoded], ["observation", "reconstruction"])
    >>> writer.image("images/vae", strip, step)  # doctest: +SKIP
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np
import torch

FONT = cv2.FONT_HERSHEY_SIMPLEX
FONT_SCALE = 0.5
"""About 10 px capitals: legible in TensorBoard at the strip's natural size."""
SMALLEST_FONT_SCALE = 0.3
MAX_UPSCALE = 8
"""Panels are never enlarged more than this; a longer caption gets a smaller font."""
PADDING = 4
"""Pixels between a caption and its bar's edges."""


def labelled_strip(images: Sequence[torch.Tensor], labels: Sequence[str]) -> torch.Tensor:
    """The images side by side, each under a caption bar holding its label.

    Args:
        images: Panels, each ``(3, H, W)`` with values in ``[0, 1]`` (any device,
            dtype; values outside are clipped), all of one height ``H``.
        labels: One caption per panel, printable ASCII (OpenCV's fonts have nothing
            else); an empty label leaves its bar blank.

    Returns:
        A CPU float tensor ``(3, bar + H * k, sum(W) * k)``: a black caption bar with
        white text above every panel, the panels scaled up ``k`` times (``k >= 1``,
        the smallest integer factor at which every caption fits, at most
        :data:`MAX_UPSCALE`).

    Raises:
        ValueError: No panels, a label count that differs from the panel count, a
            panel that is not ``(3, H, W)``, panels of different heights, or a label
            that is not printable ASCII.
    """
    if len(images) != len(labels):
        raise ValueError(
            f"labelled_strip: {len(images)} images but {len(labels)} labels "
            f"({list(labels)}); give one label per panel"
        )
    if not images:
        raise ValueError("labelled_strip: no panels to show")
    for index, image in enumerate(images):
        if image.dim() != 3 or image.shape[0] != 3:
            raise ValueError(
                f"labelled_strip: panel {index} ({labels[index]!r}) must be (3, H, W), "
                f"got {tuple(image.shape)}"
            )
    heights = {int(image.shape[1]) for image in images}
    if len(heights) > 1:
        shapes = [tuple(image.shape) for image in images]
        raise ValueError(f"labelled_strip: panels must share one height, got shapes {shapes}")
    for label in labels:
        if not (label.isascii() and label.isprintable()):
            raise ValueError(
                f"labelled_strip: label {label!r} must be printable ASCII "
                "(OpenCV's fonts draw nothing else)"
            )
    widths = [int(image.shape[2]) for image in images]
    factor = _upscale(widths, labels)
    font_scales = [
        _font_scale(width * factor, label) for width, label in zip(widths, labels, strict=True)
    ]
    bar_height = _bar_height()
    columns = []
    for index, (image, label, font_scale) in enumerate(
        zip(images, labels, font_scales, strict=True)
    ):
        panel = image.detach().to("cpu", torch.float32).clamp(0, 1)
        panel = panel.repeat_interleave(factor, dim=1).repeat_interleave(factor, dim=2)
        bar = _caption_bar(label, panel.shape[2], bar_height, font_scale, divider=index > 0)
        columns.append(torch.cat([bar, panel], dim=1))
    return torch.cat(columns, dim=2)


def _text_width(label: str, font_scale: float) -> int:
    (width, _), _ = cv2.getTextSize(label, FONT, font_scale, 1)
    return int(width)


def _upscale(widths: Sequence[int], labels: Sequence[str]) -> int:
    """The smallest integer factor at which every caption fits, capped."""
    needed = 1
    for width, label in zip(widths, labels, strict=True):
        if label:
            room = _text_width(label, FONT_SCALE) + 2 * PADDING
            needed = max(needed, math.ceil(room / width))
    return min(needed, MAX_UPSCALE)


def _font_scale(width: int, label: str) -> float:
    """:data:`FONT_SCALE`, or smaller where a caption is too long for its panel."""
    room = width - 2 * PADDING
    if not label or _text_width(label, FONT_SCALE) <= room:
        return FONT_SCALE
    shrunk = FONT_SCALE * room / max(1, _text_width(label, FONT_SCALE))
    return max(SMALLEST_FONT_SCALE, shrunk)


def _bar_height() -> int:
    (_, height), baseline = cv2.getTextSize("Ag", FONT, FONT_SCALE, 1)
    return int(height + baseline + 2 * PADDING)


def _caption_bar(
    label: str, width: int, height: int, font_scale: float, divider: bool
) -> torch.Tensor:
    """A black ``(3, height, width)`` bar with ``label`` centred in white."""
    bar = np.zeros((height, width, 3), np.uint8)
    if divider:
        bar[:, 0] = 96  # where one panel's caption ends and the next begins
    if label:
        (text_width, text_height), _ = cv2.getTextSize(label, FONT, font_scale, 1)
        x = max(PADDING, (width - text_width) // 2)
        y = (height + text_height) // 2
        cv2.putText(bar, label, (x, y), FONT, font_scale, (255, 255, 255), 1, cv2.LINE_AA)
    return torch.from_numpy(bar).permute(2, 0, 1).float().div(255)
