"""Recorded videos as a sensor: offline data for pre-training a world model.

A folder is played file after file in name order. At the end of the last file the
sensor loops back to the first by default, so a run ends when the runtime stops it
(``max_uptime``, the web API), the same way as every other world. With ``loop=False``
the end of the data raises :class:`EndOfVideos` (a
:class:`~ami.interaction.environment.WorldEnded`): the run then stops cleanly, exit 0.

Each read is the next frame, whatever the inference interval: a step lasts one frame
of the video (1/fps of its time), and :meth:`VideoFilesSensor.now_playing` tells which
file and which moment of it the last frame shows, so that the video's own sound
(:mod:`ami.interaction.io.video_sound`) can be heard at that very moment.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import cv2
import torch
from typing_extensions import override

from ami.interaction.environment import WorldEnded
from ami.interaction.io.camera import open_capture
from ami.interaction.io.frames import as_image, check_size, frame_to_observation
from ami.interaction.io.sensor import Sensor
from ami.interaction.spaces import IMAGE, Box, image_space

logger = logging.getLogger(__name__)

VIDEO_SUFFIXES = frozenset(
    {".avi", ".flv", ".m4v", ".mkv", ".mov", ".mp4", ".mpeg", ".mpg", ".webm", ".wmv"}
)
"""File name endings taken from a folder; other files (notes, CSVs) are skipped."""


class EndOfVideos(WorldEnded):
    """Every video was played once and ``loop`` is off."""


def list_videos(path: str | Path) -> list[Path]:
    """The video file ``path``, or the videos directly inside folder ``path``, by name."""
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise FileNotFoundError(f"interaction.camera={str(path)!r}: no such video file or folder")
    videos = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES)
    if not videos:
        raise FileNotFoundError(
            f"interaction.camera={str(path)!r}: the folder holds no video "
            f"(accepted endings: {', '.join(sorted(VIDEO_SUFFIXES))})"
        )
    return videos


class VideoFilesSensor(Sensor):
    """Frames of one video file or of a folder of videos, in order.

    Args:
        path: A video file, or a folder whose videos are played in name order.
        width: Observation width in pixels.
        height: Observation height in pixels (frames are centre-cropped, then resized).
        loop: Start again from the first video after the last one; if False, the end of
            the last video raises :class:`EndOfVideos`.
    """

    time_scalable = True  # the next frame is the next step's, however fast they come

    def __init__(self, path: str, width: int = 84, height: int = 84, loop: bool = True) -> None:
        check_size(width, height)
        if not isinstance(path, str | Path) or not str(path):
            raise ValueError(f"interaction.camera must be a video file or folder, got {path!r}")
        self.path = str(path)
        list_videos(self.path)  # a missing file fails at launch; setup() lists them again
        self.width = width
        self.height = height
        self.loop = loop
        self.passes = 0
        """Complete passes over all videos so far."""
        self._videos: list[Path] = []
        self._index = 0
        self._frames_this_pass = 0
        self._frame = 0
        """Frames read from the open file."""
        self._capture: cv2.VideoCapture | None = None
        self._cut = False
        self._resume: tuple[str, int] | None = None
        self._shown: tuple[Path, float] | None = None

    @property
    def current_video(self) -> Path | None:
        """The file the next frame comes from (None before setup, or after the end)."""
        if self._capture is None or self._index >= len(self._videos):
            return None
        return self._videos[self._index]

    def now_playing(self) -> tuple[Path, float]:
        """The file of the frame the last read returned, and that frame's time in it.

        The time is the frame's presentation timestamp in seconds from the start of the
        file's video stream, as FFmpeg reads it from the container (OpenCV's
        ``CAP_PROP_POS_MSEC``): exact for a variable frame rate too, where counting
        frames at the nominal fps would drift.

        Raises:
            RuntimeError: No frame was read since setup.
        """
        if self._shown is None:
            raise RuntimeError(
                "VideoFilesSensor.now_playing(): no frame read yet (read() comes first)"
            )
        return self._shown

    @override
    def setup(self) -> None:
        self._shown = None
        self._videos = list_videos(self.path)
        for video in self._videos[1:]:  # fail now, not hours later at the broken file
            open_capture(str(video)).release()
        self._index, self._frame = 0, 0
        if self._resume is not None:
            self._seek(*self._resume)
            self._resume = None
        else:
            self._capture = open_capture(str(self._videos[0]))

    @override
    def state_dict(self) -> dict[str, Any]:
        """Which file plays and how many of its frames were read: the video's 'pose'."""
        # After the last video of a pass without loop, the index is one past the end.
        name = self._videos[self._index].name if self._index < len(self._videos) else ""
        return {
            "file": name,
            "frame": self._frame,
            "passes": self.passes,
            "frames_this_pass": self._frames_this_pass,
        }

    @override
    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.passes = int(state["passes"])
        self._frames_this_pass = int(state["frames_this_pass"])
        self._resume = (str(state["file"]), int(state["frame"]))

    def _seek(self, name: str, frame: int) -> None:
        """Open the saved file at the saved frame (or start over if it is gone)."""
        names = [video.name for video in self._videos]
        if name not in names:
            logger.warning(
                "interaction.camera=%r: the checkpoint's video %r is not there any more; "
                "starting from the first video",
                self.path,
                name,
            )
            self._capture = open_capture(str(self._videos[0]))
            return
        self._index = names.index(name)
        self._capture = open_capture(str(self._videos[self._index]))
        for _ in range(frame):  # grab() decodes nothing: exact, and cheap per frame
            if not self._capture.grab():
                break
            self._frame += 1

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
            raise RuntimeError("VideoFilesSensor: no open video (before setup, or after the end)")
        while True:
            ok, frame = self._capture.read()
            if ok and frame is not None:
                self._frames_this_pass += 1
                self._frame += 1
                seconds = max(0.0, float(self._capture.get(cv2.CAP_PROP_POS_MSEC)) / 1000.0)
                self._shown = (self._videos[self._index], seconds)
                return frame_to_observation(as_image(frame), self.width, self.height)
            self._next_video()

    @override
    def broke_continuity(self) -> bool:
        """True once after the frames moved on to another file (or back to the first)."""
        cut, self._cut = self._cut, False
        return cut

    def _next_video(self) -> None:
        if self._capture is not None:
            self._capture.release()
        self._capture = None
        self._cut = True
        self._frame = 0
        self._index += 1
        if self._index == len(self._videos):
            self._end_of_pass()
        self._capture = open_capture(str(self._videos[self._index]))

    def _end_of_pass(self) -> None:
        if self._frames_this_pass == 0:
            raise RuntimeError(f"interaction.camera={self.path!r}: no video yielded a frame")
        self.passes += 1
        if not self.loop:
            raise EndOfVideos(
                f"interaction.camera={self.path!r}: all {len(self._videos)} video(s) played "
                "(loop is off)"
            )
        logger.info("videos in %s: pass %d done, starting over", self.path, self.passes)
        self._index = 0
        self._frames_this_pass = 0
