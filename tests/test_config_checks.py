"""Bad values in a config fail when the experiment is built, naming the key, before any start."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from ami.experiment import build

CONF = Path(__file__).resolve().parents[1] / "conf"

pytestmark = pytest.mark.usefixtures("keep_main_thread_name")

CASES = [
    # (overrides, text the error must contain)
    ("buffer.dtypes.image=int7", "buffer.dtypes.image='int7' is not a storage dtype"),
    ("buffer.dtypes.image=int16", "buffer.dtypes.image=int16 cannot store"),
    ("+agent.buffers.trajectory.dtypes.latent=float99", "agent.buffers.trajectory.dtypes.latent"),
    ("buffer.capacity=-1", "capacity=-1"),
    ("interaction.height=8", "interaction.height=8: an image side of 8 is too small"),
    ("interaction.width=abc", "interaction.width='abc'"),
    ("model.size=tiny", "model.size='tiny'"),
    ("model.trainers.dynamics.sequence_length=100", "model.trainers.dynamics: trainer dynamics"),
    ("model.trainers.dynamics.buffer=nope", "buffer='nope' names no buffer"),
    ("agent.buffers.trajectory.capacity=10", "agent.trainers.policy: trainer policy"),
    ("resume_from=/no/such/run", "resume_from='/no/such/run': no checkpoint there"),
    ("interaction=video interaction.camera=/no/such.mp4", "interaction.camera='/no/such.mp4'"),
]


@pytest.mark.parametrize(("overrides", "expected"), CASES, ids=[case[0] for case in CASES])
def test_a_bad_value_fails_at_build_naming_its_key(
    overrides: str, expected: str, tmp_path: Path
) -> None:
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("launch", overrides=[*overrides.split(), "fabric.accelerator=cpu"])
    with pytest.raises(Exception) as caught:
        build(cfg, tmp_path)
    assert expected in str(caught.value)
    assert not (tmp_path / "tensorboard").exists(), "nothing started"
