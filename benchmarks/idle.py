"""CPU cost of the runtime itself while there is nothing to train.

Runs the default sim world with the random agent and no trainers for ``--seconds``
(the training thread still wakes for each new step, takes it and merges it into the
buffer). CPU time of the whole process is sampled over a window that skips start-up
and shutdown, and compared with the time the inference thread spent in the agent and
the world (``inference/step_time``). Prints one JSON line: ``cpu_percent_of_core``
(whole process), ``agent_world_percent`` and ``overhead_percent`` (the difference:
what the three threads, the hand-off, buffers and metrics cost).

Usage: ``python benchmarks/idle.py [--seconds 30] [--interval 0.1]``
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from pathlib import Path

from hydra import compose, initialize_config_dir
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from ami.experiment import build

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--interval", type=float, default=0.1)
    args = parser.parse_args()
    warmup, cooldown = 5.0, 1.0
    overrides = [
        "agent=random",
        "model.trainers=null",
        "model.evaluation=null",  # nothing to train: nothing to evaluate either
        "web_api=none",
        f"max_uptime={args.seconds}",
        f"threads.inference.interval={args.interval}",
    ]
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("launch", overrides=overrides)
    with tempfile.TemporaryDirectory() as out:
        main_thread = build(cfg, Path(out))
        samples: dict[str, tuple[float, float]] = {}

        def sample(name: str) -> None:
            samples[name] = (time.time(), time.process_time())

        started = time.monotonic()
        timers = [
            threading.Timer(warmup, sample, ("start",)),
            threading.Timer(args.seconds - cooldown, sample, ("end",)),
        ]
        for timer in timers:
            timer.start()
        code = main_thread.run()
        for timer in timers:
            timer.cancel()
        if code != 0 or len(samples) != 2:
            raise SystemExit(f"run failed (exit {code}) or was too short for the window")
        (wall0, cpu0), (wall1, cpu1) = samples["start"], samples["end"]
        events = EventAccumulator(str(Path(out) / "tensorboard"))
        events.Reload()
        step_time = sum(
            e.value for e in events.Scalars("inference/step_time") if wall0 <= e.wall_time <= wall1
        )
    window = wall1 - wall0
    cpu = (cpu1 - cpu0) / window * 100
    agent_world = step_time / window * 100
    print(
        json.dumps(
            {
                "seconds": round(time.monotonic() - started, 1),
                "window_seconds": round(window, 1),
                "interval": args.interval,
                "cpu_percent_of_core": round(cpu, 2),
                "agent_world_percent": round(agent_world, 2),
                "overhead_percent": round(cpu - agent_world, 2),
            }
        )
    )


if __name__ == "__main__":
    main()
