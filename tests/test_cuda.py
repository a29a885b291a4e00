"""The model gate and Fabric on a GPU with bf16 autocast (skips without CUDA)."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch
from lightning_fabric import Fabric
from torch import nn

from ami.models import BoundOptimizer, ModelGate

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]

ROOT = Path(__file__).resolve().parents[1]


def test_optimizer_updates_the_training_copy_only_on_cuda_bf16() -> None:
    fabric = Fabric(accelerator="cuda", devices=1, precision="bf16-mixed")
    gate = ModelGate({"m": nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4))})
    gate.to(fabric.device)
    optimizer = fabric.setup_optimizers(torch.optim.AdamW(gate.training_module("m").parameters()))
    gate.attach_optimizer(BoundOptimizer(optimizer))
    x = torch.randn(8, 16, device=fabric.device)

    def step() -> None:
        with fabric.autocast():
            loss = gate.training_module("m")(x).float().pow(2).mean()
        fabric.backward(loss)
        optimizer.step()
        optimizer.zero_grad()

    for _ in range(3):
        step()
        gate.publish()
        published = [p.detach().clone() for p in gate._current.models["m"].module.parameters()]
        step()
        for before, after in zip(published, gate._current.models["m"].module.parameters()):
            assert torch.equal(before, after), "a step after a switch changed the inference copy"
    with gate.inference.snapshot() as models:
        out = models["m"](x)
    assert out.device.type == "cuda"


class SlowReader(nn.Module):
    """Reads its weight only after a long GPU sleep queued before it."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.zeros(1024))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        torch.cuda._sleep(2_000_000_000)  # about a second of GPU time, queued, not waited for
        return x + self.w


def test_the_copy_back_waits_for_the_readers_kernels_not_just_their_python_calls() -> None:
    """The agent's call returns at once; its kernel reads the copy a second later, on its
    own stream. The training thread's copy into that (retired) copy must wait for it."""
    gate = ModelGate({"m": SlowReader()})
    gate.to("cuda")
    with torch.no_grad():
        gate.training_module("m").w.fill_(1.0)
    x = torch.zeros(1024, device="cuda")
    reader_stream = torch.cuda.Stream()
    results: dict[str, torch.Tensor] = {}

    def read() -> None:
        with torch.cuda.stream(reader_stream), gate.inference.snapshot() as models:
            results["out"] = models["m"](x)  # queued: returns before the kernel runs

    reader = threading.Thread(target=read, name="inference")
    reader.start()
    reader.join(60)
    gate.publish()  # the old copy (zeros) becomes the training copy, and receives ones
    torch.cuda.synchronize()
    assert torch.equal(results["out"].cpu(), torch.zeros(1024)), "the read saw the copy"
    assert torch.equal(gate.training_module("m").w.detach().cpu(), torch.ones(1024))


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
