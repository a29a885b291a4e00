"""Cost of one simulated-world step (act + render + to tensor), on one CPU thread.

    python benchmarks/world.py [--frames 1000] [--sizes 64 84 128 256]

Prints one JSON line per world and frame size, e.g.
``{"world": "sim", "size": 84, "ms_per_frame": 0.7, "frames": 1000}``. The agent's
step budget is the inference interval (0.1 s by default); the world should take a
small part of it. ``sim_osc`` adds the OSC round trip over loopback UDP.
"""

from __future__ import annotations

import argparse
import json
import time

import cv2
import torch

from ami.interaction.environment import Environment
from ami.interaction.io.actions import ACTION_CHOICES
from ami.interaction.worlds.sim import SimEnvironment, SimOscEnvironment, SimWorld

WARM_UP = 50


def actions(count: int) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return [
        torch.stack([torch.randint(0, n, (), generator=generator) for n in ACTION_CHOICES])
        for _ in range(count)
    ]


def measure(env: Environment, frames: int) -> float:
    """Milliseconds per observe + affect, after a warm-up."""
    env.setup()
    try:
        plan = actions(WARM_UP + frames)
        for action in plan[:WARM_UP]:
            env.observe()
            env.affect(action)
        start = time.perf_counter()
        for action in plan[WARM_UP:]:
            env.observe()
            env.affect(action)
        return (time.perf_counter() - start) / frames * 1000.0
    finally:
        env.teardown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=1000)
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 84, 128, 256])
    args = parser.parse_args()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    runs: list[tuple[str, int]] = [("sim", size) for size in args.sizes]
    runs.append(("sim_osc", 84))
    for world, size in runs:
        sim = SimWorld(width=size, height=size, seed=0)
        env = SimEnvironment(sim) if world == "sim" else SimOscEnvironment(sim)
        ms = measure(env, args.frames)
        print(
            json.dumps(
                {"world": world, "size": size, "ms_per_frame": round(ms, 3), "frames": args.frames}
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
