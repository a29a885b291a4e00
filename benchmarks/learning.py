"""Learning benchmark: does the world model learn, and does curiosity explore?

One run (the default) runs the real system (sim world, ``model=world_model``, the chosen
agent) for a few minutes, reads the run's TensorBoard files back and prints one JSON
line:

- ``loss_first_minute`` / ``loss_last_minute``: mean of ``training/dynamics/frame``
  (the forward model's pixel prediction loss) over the first and the last minute of
  the run's wall-clock time (the first and last half for runs shorter than two minutes;
  ``window_seconds`` says which);
- ``cells_visited`` (the sim world's last ``inference/world/cells_visited``),
  ``cells_total`` and ``coverage_auc``: the mean, over the run's steps, of the fraction
  of floor cells visited so far (1 would be every cell from the first step);
- from the run's last evaluation (:mod:`ami.evaluation`; None where it had no number):
  ``prediction_vs_copy`` (``eval/prediction_vs_copy``: the world model's next-frame
  error on held-out frames of the last 600 steps, a minute at the default 10 Hz, over
  that of "next frame = current frame"), ``probe_r2`` and ``probe_r2_heading``
  (``eval/probe_r2/position`` and ``/heading``: a ridge probe from the encoder's latent
  to the true pose);
- ``screen_fraction``: the share of steps whose frame showed the noisy TV (with
  ``--noisy-tv``; 0 without).

``--compare`` runs the set a reviewer asks for instead: for each seed, curiosity,
random, and curiosity with the noisy TV on, one after another (each in its own process,
so that runs cannot disturb each other), then prints one JSON line per run, a summary
line (``"summary": true``: per-seed ratios, means and ranges) and a Markdown table.
``noisy_tv_ratio`` is, per seed, curiosity's cells with the screen on over its cells
with it off.

Examples:
    python benchmarks/learning.py --agent curiosity --minutes 2 --seed 0
    python benchmarks/learning.py --agent random --minutes 0.5 threads.inference.interval=0.05
    python benchmarks/learning.py --compare --seeds 0-4 --minutes 10
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
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
ARMS = (("curiosity", False), ("random", False), ("curiosity", True))
"""What --compare runs per seed: (agent, noisy TV)."""


def compose_config(
    agent: str, seed: int, seconds: float, noisy_tv: bool, extra: list[str]
) -> DictConfig:
    """The launch config for this benchmark, composed as scripts/launch.py would."""
    overrides = [
        "interaction=sim",
        "model=world_model",
        f"agent={agent}",
        f"seed={seed}",
        f"max_uptime={seconds}",
        "web_api=none",
        "task_name=benchmark_learning",
        f"interaction.world.noisy_tv={str(noisy_tv).lower()}",
        *extra,
    ]
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose("launch", overrides=overrides)


def read_all_scalars(log_dir: Path) -> dict[str, list[tuple[float, float]]]:
    """Tag -> ``(wall_time, value)`` of every scalar event under ``log_dir``."""
    events = EventAccumulator(str(log_dir), size_guidance={"scalars": 0})
    events.Reload()
    return {
        tag: [(e.wall_time, e.value) for e in events.Scalars(tag)]
        for tag in events.Tags()["scalars"]
    }


def mean_between(points: list[tuple[float, float]], start: float, end: float) -> float | None:
    values = [value for wall_time, value in points if start <= wall_time <= end]
    return sum(values) / len(values) if values else None


def last(points: list[tuple[float, float]] | None) -> float | None:
    return points[-1][1] if points else None


def final_evaluation(log_dir: Path) -> dict[str, float]:
    """The ``eval/*`` numbers of the run's last evaluation, and only those.

    Every evaluation charts ``eval/held_out_steps`` at the step it ran; a number the last
    one left out (a probe with too few frames) is missing here, not an older value.
    """
    events = EventAccumulator(str(log_dir), size_guidance={"scalars": 0})
    events.Reload()
    tags = [tag for tag in events.Tags()["scalars"] if tag.startswith("eval/")]
    if "eval/held_out_steps" not in tags:
        return {}
    step = events.Scalars("eval/held_out_steps")[-1].step
    found: dict[str, float] = {}
    for tag in tags:
        points = events.Scalars(tag)
        if points and points[-1].step == step:
            found[tag] = points[-1].value
    return found


def summarize(run_dir: Path) -> dict[str, float | None]:
    """The benchmark's numbers from a finished run's event files."""
    tensorboard = run_dir / "tensorboard"
    scalars = read_all_scalars(tensorboard)
    steps = scalars.get("inference/step_time", [])
    losses = scalars.get(LOSS_TAG, [])
    cells = scalars.get(CELLS_TAG, [])
    totals = scalars.get("inference/world/cells_total", [])
    if not steps:
        raise RuntimeError(f"no inference steps were logged under {tensorboard}")
    start = steps[0][0]
    end = max(steps[-1][0], losses[-1][0] if losses else start)
    window = min(WINDOW_SECONDS, (end - start) / 2)
    total = last(totals)
    screen = last(scalars.get("inference/world/screen_steps"))
    evaluation = final_evaluation(tensorboard)
    return {
        "loss_first_minute": mean_between(losses, start, start + window),
        "loss_last_minute": mean_between(losses, end - window, end),
        "cells_visited": last(cells),
        "window_seconds": round(window, 1),
        "agent_steps": float(len(steps)),
        "cells_total": total,
        # Every step's fraction so far, averaged: earlier exploration scores higher.
        "coverage_auc": (
            sum(value for _, value in cells) / (len(cells) * total) if cells and total else None
        ),
        "prediction_vs_copy": evaluation.get("eval/prediction_vs_copy"),
        "probe_r2": evaluation.get("eval/probe_r2/position"),
        "probe_r2_heading": evaluation.get("eval/probe_r2/heading"),
        "screen_fraction": None if screen is None else screen / len(steps),
    }


def run_one(args: argparse.Namespace) -> int:
    stamp = time.strftime("%Y-%m-%d_%H-%M-%S")
    tv = "_noisy_tv" if args.noisy_tv else ""
    run_dir = args.output_dir or (
        ROOT / "logs" / "benchmarks" / "learning" / f"{stamp}_{args.agent}{tv}_seed{args.seed}"
    )
    events = run_dir / "tensorboard"
    if events.is_dir() and any(events.iterdir()):
        # Its numbers would mix the old run's events with the new one's.
        print(
            f"--output-dir {run_dir}: holds a run already ({events} is not empty); "
            "give a new folder",
            file=sys.stderr,
        )
        return 2
    run_dir.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(threadName)s %(name)s %(levelname)s: %(message)s",
        handlers=[logging.FileHandler(run_dir / "run.log")],
    )
    cfg = compose_config(args.agent, args.seed, args.minutes * 60, args.noisy_tv, args.overrides)
    code = build(cfg, run_dir).run()
    if code != 0:
        print(f"the run failed (exit {code}); see {run_dir / 'run.log'}", file=sys.stderr)
        return code
    result: dict[str, object] = {
        "agent": args.agent,
        "noisy_tv": args.noisy_tv,
        "minutes": args.minutes,
        "seed": args.seed,
    }
    result.update(summarize(run_dir))
    result["run_dir"] = str(run_dir)
    print(json.dumps(result), flush=True)
    return 0


def parse_seeds(text: str) -> list[int]:
    """``0-4`` or ``0,2,5`` (or a mix) as a list of seeds."""
    seeds: list[int] = []
    try:
        for part in text.split(","):
            low, _, high = part.partition("-")
            seeds.extend(range(int(low), int(high or low) + 1))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--seeds {text!r}: expected seeds like 0-4 or 0,2,5"
        ) from None
    if not seeds:
        raise argparse.ArgumentTypeError(f"--seeds {text!r}: names no seed")
    repeated = sorted({seed for seed in seeds if seeds.count(seed) > 1})
    if repeated:  # one folder per seed and arm: a repeat would overwrite and mix runs
        raise argparse.ArgumentTypeError(
            f"--seeds {text!r}: names seed(s) {repeated} twice; name each seed once"
        )
    return seeds


def run_compare(args: argparse.Namespace) -> int:
    stamp = time.strftime("%Y-%m-%d_%H-%M-%S")
    base = args.output_dir or ROOT / "logs" / "benchmarks" / "learning" / f"{stamp}_compare"
    runs: list[dict[str, object]] = []
    for seed in args.seeds:
        for agent, noisy_tv in ARMS:
            name = f"{agent}{'_noisy_tv' if noisy_tv else ''}_seed{seed}"
            command = [
                sys.executable,
                str(Path(__file__).resolve()),
                f"--agent={agent}",
                f"--seed={seed}",
                f"--minutes={args.minutes}",
                f"--output-dir={base / name}",
                *(["--noisy-tv"] if noisy_tv else []),
                *args.overrides,
            ]
            done = subprocess.run(command, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                print(done.stderr, file=sys.stderr)
                print(f"{name} failed (exit {done.returncode}); see {base / name}", file=sys.stderr)
                return done.returncode
            line = json.loads(done.stdout.strip().splitlines()[-1])
            print(json.dumps(line), flush=True)
            runs.append(line)
    summary = compare(runs, args.seeds)
    print(json.dumps(summary), flush=True)
    print(table(summary), flush=True)
    return 0


def _number(run: dict[str, object], key: str) -> float | None:
    value = run.get(key)
    return float(value) if isinstance(value, int | float) else None


def _spread(values: Sequence[float | None]) -> dict[str, float | None]:
    present = [value for value in values if value is not None]
    if not present:
        return {"mean": None, "min": None, "max": None}
    return {"mean": statistics.fmean(present), "min": min(present), "max": max(present)}


def compare(runs: Sequence[dict[str, object]], seeds: Sequence[int]) -> dict[str, object]:
    """Per seed and overall: curiosity against random, and curiosity beside the noisy TV."""

    def find(agent: str, noisy_tv: bool, seed: int) -> dict[str, object]:
        for run in runs:
            if run["agent"] == agent and run["noisy_tv"] == noisy_tv and run["seed"] == seed:
                return run
        raise KeyError(f"no run of {agent} (noisy_tv={noisy_tv}) with seed {seed}")

    rows: list[dict[str, float | int | None]] = []
    for seed in seeds:
        curious, random, tv = (
            find("curiosity", False, seed),
            find("random", False, seed),
            find("curiosity", True, seed),
        )
        c_cells, r_cells = _number(curious, "cells_visited"), _number(random, "cells_visited")
        tv_cells = _number(tv, "cells_visited")
        rows.append(
            {
                "seed": seed,
                "curiosity_cells": c_cells,
                "random_cells": r_cells,
                "cells_ratio": c_cells / r_cells if c_cells is not None and r_cells else None,
                "curiosity_coverage_auc": _number(curious, "coverage_auc"),
                "random_coverage_auc": _number(random, "coverage_auc"),
                "prediction_vs_copy": _number(curious, "prediction_vs_copy"),
                "random_prediction_vs_copy": _number(random, "prediction_vs_copy"),
                "probe_r2": _number(curious, "probe_r2"),
                "random_probe_r2": _number(random, "probe_r2"),
                "noisy_tv_cells": tv_cells,
                "noisy_tv_ratio": tv_cells / c_cells if tv_cells is not None and c_cells else None,
                "screen_fraction": _number(tv, "screen_fraction"),
            }
        )
    keys = [key for key in rows[0] if key != "seed"]
    overall = {key: _spread([row[key] for row in rows]) for key in keys}  # type: ignore[misc]
    beats = [
        row["curiosity_cells"] > row["random_cells"]  # type: ignore[operator]
        for row in rows
        if row["curiosity_cells"] is not None and row["random_cells"] is not None
    ]
    return {
        "summary": True,
        "seeds": list(seeds),
        "minutes": runs[0]["minutes"] if runs else None,
        "per_seed": rows,
        "overall": overall,
        "curiosity_beats_random_on": sum(beats),
        "seeds_compared": len(beats),
    }


def table(summary: dict[str, object]) -> str:
    """The summary as Markdown: one row per seed, then mean and range."""
    rows: list[dict[str, float | int | None]] = summary["per_seed"]  # type: ignore[assignment]
    overall: dict[str, dict[str, float | None]] = summary["overall"]  # type: ignore[assignment]
    columns = [
        ("curiosity_cells", "cells: curiosity", "{:.0f}"),
        ("random_cells", "cells: random", "{:.0f}"),
        ("cells_ratio", "ratio", "{:.2f}"),
        ("curiosity_coverage_auc", "coverage AUC: curiosity", "{:.3f}"),
        ("random_coverage_auc", "coverage AUC: random", "{:.3f}"),
        ("prediction_vs_copy", "prediction/copy: curiosity", "{:.3f}"),
        ("probe_r2", "probe R² (position): curiosity", "{:.2f}"),
        ("noisy_tv_ratio", "noisy TV ratio", "{:.2f}"),
        ("screen_fraction", "steps on screen", "{:.2f}"),
    ]

    def cell(value: float | int | None, form: str) -> str:
        return "-" if value is None else form.format(value)

    lines = [
        "| seed | " + " | ".join(title for _, title, _ in columns) + " |",
        "|---" * (len(columns) + 1) + "|",
    ]
    for row in rows:
        lines.append(
            f"| {row['seed']} | "
            + " | ".join(cell(row[key], form) for key, _, form in columns)
            + " |"
        )
    for label in ("mean", "min", "max"):
        lines.append(
            f"| {label} | "
            + " | ".join(cell(overall[key][label], form) for key, _, form in columns)
            + " |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--agent", choices=["curiosity", "random"], default="curiosity")
    parser.add_argument("--minutes", type=float, default=2.0, help="run length (fractions ok)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--noisy-tv", action="store_true", help="the world's noisy TV on")
    parser.add_argument(
        "--compare", action="store_true", help="curiosity, random, curiosity + noisy TV per seed"
    )
    parser.add_argument("--seeds", type=parse_seeds, default=[0], help="with --compare: 0-4")
    parser.add_argument("--output-dir", type=Path, default=None)
    parser.add_argument("overrides", nargs="*", help="extra Hydra overrides, e.g. model.size=small")
    args = parser.parse_args()
    if args.minutes <= 0:
        parser.error("--minutes must be > 0")
    return run_compare(args) if args.compare else run_one(args)


if __name__ == "__main__":
    sys.exit(main())
