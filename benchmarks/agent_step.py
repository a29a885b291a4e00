"""How long one agent step takes in the default experiment: the inference thread's own cost.

Builds the default experiment (sim world, curiosity agent, world model) through the same
``build()`` a launch uses, runs it for ``--seconds``, and reads ``inference/step_time``
(observe, decide, act, record) back from the run's TensorBoard file, skipping the first
``--warmup`` seconds. By default nothing trains (``model.trainers=null``,
``agent.trainers=null``), so the figure is the agent's and the world's cost alone,
without the training thread competing for the cores; ``--train`` keeps the trainers.

Only the config and ``ami.experiment.build`` are used, so the script also measures an
older checkout of the project: ``PYTHONPATH=<checkout> python <checkout>/benchmarks/agent_step.py``
after copying it there (this is how the model gate's cost was measured against the
code before it).

Prints one JSON line: ``steps``, ``step_ms_{mean,p50,p90,p99}``, ``overruns``.

Usage: ``python benchmarks/agent_step.py [--seconds 60] [--warmup 5] [--train]
[override ...]``
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

from hydra import compose, initialize_config_dir
from measuring import percentile
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from ami.experiment import build

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--train", action="store_true", help="keep the trainers")
    parser.add_argument("overrides", nargs="*", help="extra Hydra overrides")
    args = parser.parse_args()
    overrides = ["web_api=none", f"max_uptime={args.seconds}", *args.overrides]
    if not args.train:
        overrides += ["model.trainers=null", "agent.trainers=null", "model.evaluation=null"]
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("launch", overrides=overrides)
    with tempfile.TemporaryDirectory() as out:
        code = build(cfg, Path(out)).run()
        if code != 0:
            raise SystemExit(f"run failed (exit {code})")
        events = EventAccumulator(str(Path(out) / "tensorboard"), {"scalars": 0})
        events.Reload()
        scalars = events.Scalars("inference/step_time")
        start = scalars[0].wall_time + args.warmup
        times = [e.value * 1e3 for e in scalars if e.wall_time >= start]
        overruns = events.Scalars("inference/overruns")[-1].value
    print(
        json.dumps(
            {
                "train": args.train,
                "seconds": args.seconds,
                "steps": len(times),
                "step_ms_mean": round(statistics.fmean(times), 3),
                "step_ms_p50": round(percentile(times, 50), 3),
                "step_ms_p90": round(percentile(times, 90), 3),
                "step_ms_p99": round(percentile(times, 99), 3),
                "overruns": overruns,
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
