"""Record what the agent saw and did: a video of its observations, a CSV of its actions.

A recording of a VRChat run is the data for later offline pre-training
(``interaction=video interaction.camera=<folder>``) and the way to see what an agent
did. Row ``n`` of the CSV is the action chosen after frame ``n`` of the video.
"""

from __future__ import annotations

import csv
import io
import time
from pathlib import Path

import cv2
import torch
from typing_extensions import override

from ami.interaction.environment import Environment
from ami.interaction.io.actions import ACTION_NAMES, validate_action
from ami.interaction.io.frames import observation_to_bgr
from ami.interaction.spaces import IMAGE, Observation
from ami.interaction.wrapper import EnvironmentWrapper


class RecordingWrapper(EnvironmentWrapper):
    """Writes every observation to a video file and every action to a CSV file.

    Args:
        environment: The environment whose stream is recorded.
        directory: Folder for the files; created at setup.
        interval: Seconds between observations (``threads.inference.interval``); the
            video's frame rate is its inverse, so it plays back at real speed.
        codec: FourCC of the video codec. ``FFV1`` is lossless (exact frames for
            training); ``MJPG`` is smaller and plays anywhere.
        video_name: Video file name; its ending picks the container (``.mkv``, ``.avi``).
        actions_name: CSV file name.
    """

    def __init__(
        self,
        environment: Environment,
        directory: str | Path,
        interval: float = 0.1,
        codec: str = "FFV1",
        video_name: str = "observations.mkv",
        actions_name: str = "actions.csv",
    ) -> None:
        super().__init__(environment)
        if IMAGE not in environment.observation_space():
            raise ValueError(
                f"+interaction/wrappers=record records the {IMAGE!r} modality, which this "
                f"world does not observe (it observes {sorted(environment.observation_space())})"
            )
        if interval <= 0:
            raise ValueError(f"interval must be > 0 seconds, got {interval}")
        if len(codec) != 4:
            raise ValueError(f"codec must be a four-character code such as 'FFV1', got {codec!r}")
        self.directory = Path(directory)
        self.fps = 1.0 / interval
        self.codec = codec
        self.video_path = self.directory / video_name
        self.actions_path = self.directory / actions_name
        self.frames = 0
        """Observations recorded so far."""
        self._writer: cv2.VideoWriter | None = None
        self._file: io.TextIOWrapper | None = None
        self._csv: csv.DictWriter[str] | None = None
        self._started = 0.0

    @override
    def setup(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self._file = self.actions_path.open("w", newline="", encoding="utf-8")
        self._csv = csv.DictWriter(self._file, ["frame", "seconds", *ACTION_NAMES])
        self._csv.writeheader()
        self._started = time.monotonic()
        super().setup()

    @override
    def teardown(self) -> None:
        try:
            super().teardown()
        finally:
            if self._writer is not None:
                self._writer.release()
                self._writer = None
            if self._file is not None:
                self._file.close()
                self._file = None

    @override
    def observe(self) -> Observation:
        observation = super().observe()
        frame = observation_to_bgr(observation[IMAGE])
        if self._writer is None:
            self._writer = self._open_writer(frame.shape[1], frame.shape[0])
        self._writer.write(frame)
        self.frames += 1
        return observation

    @override
    def affect(self, action: torch.Tensor) -> None:
        super().affect(action)
        if self._csv is None:
            raise RuntimeError("RecordingWrapper used before setup()")
        row: dict[str, float | int] = dict(zip(ACTION_NAMES, validate_action(action), strict=True))
        row["frame"] = self.frames - 1
        row["seconds"] = round(time.monotonic() - self._started, 4)
        self._csv.writerow(row)

    @override
    def on_pause(self) -> None:
        super().on_pause()
        if self._file is not None:
            self._file.flush()  # readable while the system is paused

    def _open_writer(self, width: int, height: int) -> cv2.VideoWriter:
        writer = cv2.VideoWriter(
            str(self.video_path), cv2.VideoWriter.fourcc(*self.codec), self.fps, (width, height)
        )
        if not writer.isOpened():
            raise RuntimeError(
                f"cannot write video {self.video_path} with codec {self.codec!r}: this OpenCV "
                "build lacks the codec or the file ending does not fit it (try MJPG and .avi)"
            )
        return writer
