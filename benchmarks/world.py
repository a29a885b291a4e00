"""Cost of one simulated-world step (act + render + to tensor), on one CPU thread.

    python benchmarks/world.py [--frames 1000] [--sizes 64 84 128 256] [--noisy-tv on|facing]
                               [--audio on]

Prints one JSON line per world and frame size, e.g.
``{"world": "sim", "size": 84, "ms_per_frame": 0.7, "frames": 1000}``. The agent's
step budget is the inference interval (0.1 s by default); the world should take a
small part of it. ``sim_osc`` adds the OSC round trip over loopback UDP.

``--noisy-tv on`` builds the worlds with the noisy TV (``interaction.world.noisy_tv``):
a fresh picture every step, painted only when the screen is in view, which on a random
walk is seldom. ``--noisy-tv facing`` puts the agent back in front of it, the screen
filling about half the frame, before every frame: the cost of watching it. Either adds
``"noisy_tv"`` to each line.

``--audio on`` builds the direct sim with its sound (``interaction.audio.enabled``, the
config's defaults: 16 kHz stereo, a 64-band spectrogram of the last 0.5 s, 0.1 s of sound
per step): each frame then also synthesises a step of sound and computes the
spectrogram. It adds ``"audio": "on"`` to each line and skips ``sim_osc``, which has no
sound; the cost of audio is the difference to a run without it.
"""

from __future__ import annotations

import argparse
import json
import time

import cv2

import ami  # noqa: F401  (first: it sets OpenMP's wait policy before torch loads)

# isort: split
import torch

from ami.interaction.environment import Environment
from ami.interaction.io.actions import ACTION_CHOICES
from ami.interaction.worlds.sim import SimEnvironment, SimOscEnvironment, SimWorld
from ami.interaction.worlds.sim.sound import SimSound

WARM_UP = 50
FACING_THE_SCREEN = (12.5, 5.5, 270.0)
"""Room b, 4.5 cells south of the screen, looking at it (north)."""


def actions(count: int) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return [
        torch.stack([torch.randint(0, n, (), generator=generator) for n in ACTION_CHOICES])
        for _ in range(count)
    ]


def measure(env: Environment, frames: int, face: SimWorld | None = None) -> float:
    """Milliseconds per observe + affect, after a warm-up (``face``: put it before the screen)."""
    env.setup()
    try:
        plan = actions(WARM_UP + frames)
        for action in plan[:WARM_UP]:
            if face is not None:
                face.place(*FACING_THE_SCREEN)
            env.observe()
            env.affect(action)
        start = time.perf_counter()
        for action in plan[WARM_UP:]:
            if face is not None:
                face.place(*FACING_THE_SCREEN)
            env.observe()
            env.affect(action)
        return (time.perf_counter() - start) / frames * 1000.0
    finally:
        env.teardown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=1000)
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 84, 128, 256])
    parser.add_argument("--noisy-tv", choices=["off", "on", "facing"], default="off")
    parser.add_argument("--audio", choices=["off", "on"], default="off")
    args = parser.parse_args()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    runs: list[tuple[str, int]] = [("sim", size) for size in args.sizes]
    if args.audio == "off":
        runs.append(("sim_osc", 84))
    for world, size in runs:
        sim = SimWorld(width=size, height=size, seed=0, noisy_tv=args.noisy_tv != "off")
        sound = SimSound(seed=0) if args.audio == "on" else None
        env = SimEnvironment(sim, audio=sound) if world == "sim" else SimOscEnvironment(sim)
        ms = measure(env, args.frames, sim if args.noisy_tv == "facing" else None)
        line: dict[str, object] = {
            "world": world,
            "size": size,
            "ms_per_frame": round(ms, 3),
            "frames": args.frames,
        }
        if args.noisy_tv != "off":
            line["noisy_tv"] = args.noisy_tv
        if args.audio != "off":
            line["audio"] = args.audio
        print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
