"""Conversions between camera/video frames, rendered images and observation tensors.

One place for the conventions every sensor shares: observations are RGB float32
``(3, H, W)`` in ``[0, 1]``; OpenCV frames are BGR ``uint8`` ``(H, W, 3)``.
"""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt
import torch

Image = npt.NDArray[np.uint8]
"""An 8-bit image ``(H, W, 3)`` (or ``(H, W)`` for grey frames)."""


def as_image(array: object) -> Image:
    """View an OpenCV result as ``uint8`` (no copy: OpenCV keeps 8-bit input 8-bit)."""
    return np.asarray(array, dtype=np.uint8)


def rgb_to_observation(image: Image) -> torch.Tensor:
    """An RGB ``uint8`` image ``(H, W, 3)`` as a contiguous float ``(3, H, W)`` in ``[0, 1]``."""
    chw = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))
    return chw.to(torch.float32).div_(255.0)


def center_crop(frame: Image, width: int, height: int) -> Image:
    """The largest centred part of ``frame`` with the aspect ratio ``width : height``.

    Cropping before resizing keeps shapes undistorted whatever the camera's resolution.
    """
    rows, cols = frame.shape[:2]
    if cols * height > rows * width:
        new_cols = max(1, round(rows * width / height))
        left = (cols - new_cols) // 2
        return frame[:, left : left + new_cols]
    new_rows = max(1, round(cols * height / width))
    top = (rows - new_rows) // 2
    return frame[top : top + new_rows]


def frame_to_observation(frame: Image, width: int, height: int) -> torch.Tensor:
    """A BGR (or grey, or BGRA) OpenCV frame as an observation of ``width x height``."""
    if frame.ndim == 2:
        frame = as_image(cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR))
    elif frame.shape[2] == 4:
        frame = as_image(cv2.cvtColor(frame, cv2.COLOR_BGRA2BGR))
    cropped = center_crop(frame, width, height)
    if cropped.shape[:2] != (height, width):
        # INTER_AREA averages when shrinking (no aliasing), the usual case for a camera.
        cropped = as_image(cv2.resize(cropped, (width, height), interpolation=cv2.INTER_AREA))
    return rgb_to_observation(as_image(cv2.cvtColor(cropped, cv2.COLOR_BGR2RGB)))


def observation_to_bgr(observation: torch.Tensor) -> Image:
    """An observation ``(3, H, W)`` in ``[0, 1]`` as a BGR ``uint8`` frame for OpenCV writers."""
    hwc = observation.detach().cpu().clamp(0.0, 1.0).mul(255.0).round().to(torch.uint8)
    rgb = np.ascontiguousarray(hwc.permute(1, 2, 0).numpy())
    return as_image(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))


def check_size(width: int, height: int) -> None:
    """Reject a frame size that no renderer or camera could produce."""
    for name, value in (("width", width), ("height", height)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 8:
            raise ValueError(f"interaction.{name} must be an integer >= 8 pixels, got {value!r}")
