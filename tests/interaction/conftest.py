"""Fixtures of real parts for the world tests (the parts themselves: world_parts.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from tests.interaction.world_parts import OscRecorder, solid, write_video


@pytest.fixture
def osc_recorder() -> Iterator[OscRecorder]:
    recorder = OscRecorder()
    yield recorder
    recorder.server.server_close()


@pytest.fixture
def video_of(tmp_path: Path) -> Callable[..., Path]:
    """Write a video of solid-colour frames: ``video_of("a.mkv", [(b, g, r), ...])``."""

    def make(name: str, colours: Sequence[tuple[int, int, int]], size: int = 32) -> Path:
        return write_video(tmp_path / name, [solid(size, size, c) for c in colours])

    return make
