"""Learning benchmark: does the world model learn, and how far does the agent explore?

Runs the real system (sim world, ``model=world_model``, the chosen agent) for a few
minutes, then reads the run's TensorBoard files back and prints one JSON line:

- ``loss_first_minute`` / ``loss_last_minute``: mean of ``training/dynamics/frame``
  (the forward model's pixel prediction loss) over the first and the last minute of
  the run's wall-clock time (over the first and last half for runs shorter than two
  minutes; ``window_seconds`` says which);
- ``cells_visited``: the sim world's last ``inference/world/cells_visited``.

Examples:
    python benchmarks/learning.py --agent curiosity --minutes 2 --seed 0
    python benchmarks/learning.py --agent random --minutes 0.5 threads.inference.interval=0.05
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("AMI_ROOT", str(ROOT))

from hydra import compose, initialize_config_dir  # noqa: E402
from omegaconf import DictConfig  # noqa: E402
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402

from ami.experiment import build  # noqa: E402

LOSS_TAG = "training/dynamics/frame"
CELLS_TAG = "inference/world/cells_visited"
WINDOW_SECONDS = 60.0


def compose_config(agent: str, seed: int, seconds: float, extra: list[str]) -> DictConfig:
    """The launch config for this benchmark, composed as scripts/launch.py would."""
    overrides = [
        "interaction=sim",
        "model=world_model",
        f"agent={agent}",
        f"seed={seed}",
        f"max_uptime={seconds}",
        "web_api=none",
        "task_name=benchmark_learning",
        *extra,
    ]
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose("launch", overrides=overrides)


def read_scalars(log_dir: Path, tag: str) -> list[tuple[float, float]]:
    """``(wall_time, value)`` of every event of ``tag`` under ``log_dir`` (empty if none)."""
    events = EventAccumulator(str(log_dir), size_guidance={"scalars": 0})
    events.Reload()
    if tag not in events.Tags()["scalars"]:
        return []
    return [(e.wall_time, e.value) for e in events.Scalars(tag)]


def mean_between(points: list[tuple[float, float]], start: float, end: float) -> float | None:
    values = [value for wall_time, value in points if start <= wall_time <= end]
    return sum(values) / len(values) if values else None


def summarize(run_dir: Path) -> dict[str, float | None]:
    """The benchmark's numbers from a finished run's event files."""
    tensorboard = run_dir / "tensorboard"
    cells = read_scalars(tensorboard, CELLS_TAG)
    steps = read_scalars(tensorboard, "inference/step_time")
    losses = read_scalars(tensorboard, LOSS_TAG)
    if not steps:
        raise RuntimeError(f"no inference steps were logged under {tensorboard}")
    start = steps[0][0]
    end = max(steps[-1][0], losses[-1][0] if losses else start)
    window = min(WINDOW_SECONDS, (end - start) / 2)
    return {
        "loss_first_minute": mean_between(losses, start, start + window),
        "loss_last_minute": mean_between(losses, end - window, end),
        "cells_visited": cells[-1][1] if cells else None,
        "window_seconds": round(window, 1),
        "agent_steps": float(len(steps)),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--agent", choices=["curiosity", "random"], default="curiosity")
    parser.add_argument("--minutes", type=float, default=2.0, help="run length (fractions ok)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output-dir", type=Path, default=None)
    parser.add_argument("overrides", nargs="*", help="extra Hydra overrides, e.g. model.size=small")
    args = parser.parse_args()
    if args.minutes <= 0:
        parser.error("--minutes must be > 0")
    stamp = time.strftime("%Y-%m-%d_%H-%M-%S")
    run_dir = args.output_dir or (
        ROOT / "logs" / "benchmarks" / "learning" / f"{stamp}_{args.agent}_seed{args.seed}"
    )
    run_dir.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(threadName)s %(name)s %(levelname)s: %(message)s",
        handlers=[logging.FileHandler(run_dir / "run.log")],
    )
    cfg = compose_config(args.agent, args.seed, args.minutes * 60, args.overrides)
    code = build(cfg, run_dir).run()
    if code != 0:
        print(f"the run failed (exit {code}); see {run_dir / 'run.log'}", file=sys.stderr)
        return code
    result: dict[str, object] = {"agent": args.agent, "minutes": args.minutes, "seed": args.seed}
    result.update(summarize(run_dir))
    result["run_dir"] = str(run_dir)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
