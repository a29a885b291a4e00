"""A camera (VRChat's screen through the OBS virtual camera) or a video file, as a sensor.

``cv2.VideoCapture`` never raises for a missing device or file; it returns a capture
that is not opened and reads nothing. This sensor checks at :meth:`CameraSensor.setup`
and on every read, so a wrong index fails at once with a hint, and a camera that stops
delivering is retried, then reported as an error that stops the system: never a
silently frozen frame.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import cv2
import torch
from typing_extensions import override

from ami.interaction.io.frames import as_image, check_size, frame_to_observation
from ami.interaction.io.sensor import Sensor
from ami.interaction.spaces import IMAGE, Box, image_space

logger = logging.getLogger(__name__)


def parse_source(source: int | str) -> int | str:
    """A device index (``0``, ``"0"``) or a video path, from ``interaction.camera``."""
    if isinstance(source, bool) or not isinstance(source, int | str):
        raise ValueError(
            f"interaction.camera must be a device index (e.g. 0) or a video path, got {source!r}"
        )
    if isinstance(source, str) and source.strip().isdigit():
        return int(source)
    if isinstance(source, int) and source < 0:
        raise ValueError(f"interaction.camera device index must be >= 0, got {source}")
    return source


def open_capture(source: int | str) -> cv2.VideoCapture:
    """Open a device index or a video file, or fail with what to check."""
    if isinstance(source, str):
        if not Path(source).is_file():
            raise FileNotFoundError(f"interaction.camera={source!r}: no such video file")
        capture = cv2.VideoCapture(source)
        if not capture.isOpened():
            raise RuntimeError(
                f"interaction.camera={source!r}: OpenCV cannot open this video file; "
                "check that it is a video in a format OpenCV's FFmpeg reads"
            )
        return capture
    capture = cv2.VideoCapture(source)
    if not capture.isOpened():
        raise RuntimeError(
            f"interaction.camera={source}: cannot open camera device {source}. Check that "
            "the OBS virtual camera is started (OBS: Start Virtual Camera), that no other "
            "program holds it, and that the index is right (on Linux: ls /dev/video*)"
        )
    # A device queues frames while a step runs; a short queue keeps observations fresh.
    capture.set(cv2.CAP_PROP_BUFFERSIZE, 1)
    return capture


class CameraSensor(Sensor):
    """Frames from a capture device or a video file, cropped and resized to observations.

    Args:
        source: Device index (the OBS virtual camera, usually 0) or a video file path.
        width: Observation width in pixels.
        height: Observation height in pixels; the frame is centre-cropped to
            ``width : height`` first, so nothing is stretched.
        retries: Failed device reads in a row tolerated before giving up; a device can
            drop a frame now and then (e.g. while OBS changes scene). A file that ended
            fails at once.
        retry_interval: Seconds between retries.
    """

    def __init__(
        self,
        source: int | str = 0,
        width: int = 84,
        height: int = 84,
        retries: int = 5,
        retry_interval: float = 0.05,
    ) -> None:
        check_size(width, height)
        if retries < 0:
            raise ValueError(f"retries must be >= 0, got {retries}")
        if retry_interval < 0:
            raise ValueError(f"retry_interval must be >= 0 seconds, got {retry_interval}")
        self.source = parse_source(source)
        self.width = width
        self.height = height
        self.retries = retries
        self.retry_interval = retry_interval
        self._capture: cv2.VideoCapture | None = None

    @override
    def setup(self) -> None:
        self._capture = open_capture(self.source)

    @override
    def teardown(self) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None

    @override
    def space(self) -> Box:
        return image_space(self.height, self.width)[IMAGE]

    @override
    def read(self) -> torch.Tensor:
        if self._capture is None:
            raise RuntimeError("CameraSensor.read() called before setup() or after teardown()")
        # A file that ended never recovers; only a device is worth waiting for.
        tries = 1 if isinstance(self.source, str) else self.retries + 1
        for attempt in range(tries):
            ok, frame = self._capture.read()
            if ok and frame is not None:
                if attempt:
                    logger.info("camera %r delivers frames again", self.source)
                return frame_to_observation(as_image(frame), self.width, self.height)
            if attempt + 1 < tries:
                logger.warning(
                    "camera %r delivered no frame (try %d of %d)", self.source, attempt + 1, tries
                )
                time.sleep(self.retry_interval)
        if isinstance(self.source, str):
            raise RuntimeError(
                f"interaction.camera={self.source!r}: the video file ended; "
                "use interaction=video to loop over recorded videos"
            )
        raise RuntimeError(
            f"interaction.camera={self.source}: the camera delivered no frame in {tries} tries; "
            "check that the OBS virtual camera is still running"
        )
