"""The real entry point with each world that needs no hardware (slow: full launches)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from ami.reports.event_reading import read_events

ROOT = Path(__file__).resolve().parents[2]


def launch(run_dir: Path, *overrides: str) -> subprocess.CompletedProcess[str]:
    command = [
        sys.executable,
        str(ROOT / "scripts" / "launch.py"),
        *overrides,
        "web_api.port=0",
        f"hydra.run.dir={run_dir}",
    ]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=180)


@pytest.mark.slow
def test_sim_osc_runs_and_exits_cleanly(tmp_path: Path) -> None:
    result = launch(
        tmp_path, "interaction=sim_osc", "max_uptime=10", "+interaction/wrappers=record"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    frames = (tmp_path / "recording" / "actions.csv").read_text().splitlines()
    assert len(frames) > 10  # the world was stepped over OSC for the whole run


@pytest.mark.slow
def test_sim_with_the_noisy_tv_runs_and_charts_the_screen(tmp_path: Path) -> None:
    result = launch(tmp_path, "interaction.world.noisy_tv=true", "max_uptime=10")
    assert result.returncode == 0, result.stderr[-3000:]
    config = OmegaConf.load(tmp_path / "config.yaml")
    assert config.interaction.environment.world.noisy_tv is True
    scalars = read_events(tmp_path / "tensorboard").scalars
    for name in ("screen_in_view", "screen_steps", "channel_switches"):
        series = scalars[f"inference/world/{name}"]
        assert len(series) > 10 and (series.values >= 0.0).all(), name
    assert (scalars["inference/world/screen_in_view"].values <= 1.0).all()


@pytest.mark.slow
def test_the_audio_visual_experiment_learns_from_both_image_and_sound(tmp_path: Path) -> None:
    result = launch(tmp_path, "experiment=audio_visual", "max_uptime=20")
    assert result.returncode == 0, result.stderr[-3000:]
    config = OmegaConf.load(tmp_path / "config.yaml")
    assert config.interaction.audio.enabled is True
    assert list(config.buffer["keys"]) == ["image", "audio", "action"]
    scalars = read_events(tmp_path / "tensorboard").scalars
    parts = {part: scalars[f"training/representation/loss/{part}"] for part in ("image", "audio")}
    for part, series in parts.items():
        # In (0, 1]: the error between a reconstruction and an observation, both in [0, 1].
        assert len(series) >= 1 and ((series.values > 0) & (series.values <= 1)).all(), part
    total = scalars["training/representation/loss"]
    assert len(total) == len(parts["image"]) == len(parts["audio"])  # every step logs both
    assert total.values == pytest.approx(parts["image"].values + parts["audio"].values)


@pytest.mark.slow
def test_video_runs_and_exits_cleanly(tmp_path: Path, video_of: Callable[..., Path]) -> None:
    video = video_of("clip.mkv", [(0, 0, 255), (0, 255, 0), (255, 0, 0)])
    result = launch(
        tmp_path / "run", "interaction=video", f"interaction.camera={video}", "max_uptime=5"
    )
    assert result.returncode == 0, result.stderr[-3000:]


@pytest.mark.slow
def test_video_without_loop_ends_the_run_cleanly(
    tmp_path: Path, video_of: Callable[..., Path]
) -> None:
    video = video_of("clip.mkv", [(0, 0, 255), (0, 255, 0), (255, 0, 0)])
    result = launch(
        tmp_path / "run",
        "interaction=video",
        f"interaction.camera={video}",
        "interaction.loop=false",
        "max_uptime=60",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "the world ended" in (tmp_path / "run" / "inference.log").read_text()
