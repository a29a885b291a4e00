"""What safe points inside an optimizer step cost the trainers of the default experiment.

A long step gets a hook before every module's forward call and on every output's
gradient (:mod:`ami.trainers.safe_points`), so that a pause takes effect mid-step. This
measures the price: each trainer of the world model (and PPO's, with ``agent=curiosity``
data faked) steps on a buffer of random frames, alternately with inner safe points
forced on and off, in ``--rounds`` rounds so that the machine's drift hits both alike.

The trainers, nets and buffer come from the launch config (``model.size``, interaction
size and so on, as overridden), on the CPU, single thread of this process.

Prints one JSON line: for each trainer ``<name>_ms_off``, ``<name>_ms_on`` (median step
time) and ``<name>_overhead`` (on / off - 1), plus ``size``.

Usage: ``python benchmarks/safe_points.py [--steps 20] [--rounds 3] [override ...]``
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from pathlib import Path

import ami  # noqa: F401  (first: it sets OpenMP's wait policy before torch loads)

# isort: split
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from lightning_fabric import Fabric

from ami import hydra_setup
from ami.metrics import EventWriter
from ami.models import ModelGate
from ami.system import SystemControl
from ami.trainers import Trainer

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=20, help="timed steps per trainer and mode")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    hydra_setup.register()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("launch", overrides=["agent=random", *args.overrides])
    torch.manual_seed(0)
    models = ModelGate({name: instantiate(node) for name, node in cfg.model.models.items()})
    buffer = instantiate(cfg.buffer)
    height, width = int(cfg.interaction.height), int(cfg.interaction.width)
    choices = list(cfg.interaction.action_choices)
    buffer.extend(
        {
            "image": torch.rand(3, height, width),
            "action": torch.tensor([int(torch.randint(c, ())) for c in choices]),
        }
        for _ in range(512)
    )
    system = SystemControl()
    system.start()
    fabric = Fabric(accelerator="cpu", devices=1)
    trainers: dict[str, Trainer] = {
        name: instantiate(node) for name, node in cfg.model.trainers.items()
    }
    import tempfile

    with tempfile.TemporaryDirectory() as out:
        writer = EventWriter(Path(out))
        for name, trainer in trainers.items():
            trainer.bind(
                name, models, {buffer.shared_name: buffer}, fabric, system.handle_for(name), writer
            )
            trainer.setup()
        times: dict[str, dict[str, list[float]]] = {
            name: {"on": [], "off": []} for name in trainers
        }
        for _ in range(args.rounds):
            for mode, after in (("off", math.inf), ("on", 0.0)):
                for name, trainer in trainers.items():
                    trainer.inner_safe_points_after = after
                    trainer._optimizer_step()  # warm-up, and sets the mode's first step
                    for _ in range(args.steps):
                        started = time.perf_counter()
                        trainer._optimizer_step()
                        times[name][mode].append(time.perf_counter() - started)
        writer.close()
    result: dict[str, object] = {"size": cfg.model.size, "steps": args.steps * args.rounds}
    for name, modes in times.items():
        off, on = statistics.median(modes["off"]), statistics.median(modes["on"])
        result[f"{name}_ms_off"] = round(off * 1e3, 3)
        result[f"{name}_ms_on"] = round(on * 1e3, 3)
        result[f"{name}_overhead"] = round(on / off - 1.0, 4)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
