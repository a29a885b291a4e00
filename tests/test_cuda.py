"""Fabric on a GPU with bf16 autocast: sync and optimizer state stay right (skips without CUDA)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from lightning_fabric import Fabric
from torch import nn

from ami.models import ModelWrapper

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]

ROOT = Path(__file__).resolve().parents[1]


def test_optimizer_updates_the_training_copy_only_on_cuda_bf16() -> None:
    fabric = Fabric(accelerator="cuda", devices=1, precision="bf16-mixed")
    wrapper = ModelWrapper("m", nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4)))
    wrapper.to(fabric.device)
    optimizer = fabric.setup_optimizers(torch.optim.AdamW(wrapper.training_module.parameters()))
    wrapper.attach_optimizer(optimizer)
    x = torch.randn(8, 16, device=fabric.device)
    for _ in range(3):
        with fabric.autocast():
            loss = wrapper.training_module(x).float().pow(2).mean()
        fabric.backward(loss)
        optimizer.step()
        optimizer.zero_grad()
        wrapper.sync()
        published = [p.detach().clone() for p in wrapper._published.module.parameters()]
        with fabric.autocast():
            loss = wrapper.training_module(x).float().pow(2).mean()
        fabric.backward(loss)
        optimizer.step()
        optimizer.zero_grad()
        for before, after in zip(published, wrapper._published.module.parameters()):
            assert torch.equal(before, after), "a step after sync changed the inference copy"
    out = wrapper.inference(x)
    assert out.device.type == "cuda"


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_launch_on_cuda_bf16(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "launch.py"),
            "fabric.accelerator=cuda",
            "fabric.precision=bf16-mixed",
            "max_uptime=30",
            "web_api.port=0",
            f"hydra.run.dir={tmp_path}",
        ],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "on cuda:0 (bf16-mixed precision)" in (tmp_path / "training.log").read_text()
