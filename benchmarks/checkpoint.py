"""What a checkpoint costs while the agent acts: nothing the agent should notice.

Runs an experiment through ``ami.experiment.build`` with the control API on a free
loopback port; once every trainer has run, a client asks for ``--saves`` checkpoints
through ``POST /api/save``, one at a time, with a quiet stretch as long as each save
between them. The threads hand over snapshots, the main thread writes the file.
Prints one JSON line per experiment:

- ``state_mb``: the checkpoint file's size;
- ``snapshot_ms``: the longest time a thread spent taking its snapshot (the training
  thread is blocked that long; the inference thread's part is small);
- ``write_ms``: from the first written byte to the file in place (main thread, in
  chunks between API requests), the longest of the saves;
- ``agent_max_gap_ms``: the longest gap between two agent step starts that overlapped a
  save (from the request to the file in place);
- ``agent_max_gap_no_save_ms``: the same, over the quiet stretches of the same run.

Experiments: ``default`` (the default experiment), ``default+buffers`` (the same with
``checkpoint.buffers=true``) and ``100M`` (the default experiment plus a 100M-parameter
model trained beside it, so that the state is ~1.6 GB).

Usage: ``python benchmarks/checkpoint.py [--experiments default 100M] [--saves 3]``
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import ami  # noqa: F401  (first: it sets OpenMP's wait policy before torch loads)

# isort: split
import torch
from hydra import compose, initialize_config_dir
from measuring import call_api
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import ami.threads.background as background
from ami.experiment import build
from ami.trainers import Trainer

ROOT = Path(__file__).resolve().parents[1]

EXPERIMENTS = {
    "default": [],
    "default+buffers": ["checkpoint.buffers=true"],
    "100M": [
        "+model.models.ballast._target_=torch.nn.Linear",
        "+model.models.ballast.in_features=10000",
        "+model.models.ballast.out_features=10000",
        "+model.trainers.ballast._target_=__main__.BallastTrainer",
    ],
}


class BallastTrainer(Trainer):
    """Trains the 100M-parameter ``ballast`` model on noise: big optimizer state, no use."""

    def __init__(self) -> None:
        super().__init__(trains=["ballast"], batch_size=1, min_new_steps=64, steps_per_run=1)

    def sample(self) -> dict[str, torch.Tensor]:
        return {"x": torch.randn(1, 10000)}

    def compute_loss(self, batch: Mapping[str, torch.Tensor]) -> Mapping[str, torch.Tensor]:
        return {"loss": self.module("ballast")(batch["x"]).pow(2).mean()}


def wait_until(condition: Callable[[], bool], what: str, seconds: float = 600.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.05)


def measure(name: str, saves: int) -> dict[str, Any]:
    overrides = ["web_api.port=0", "checkpoint.every=null", *EXPERIMENTS[name]]
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("launch", overrides=overrides)
    snapshots: list[float] = []
    timed = background.snapshot

    def timed_snapshot(state: Any) -> Any:
        started = time.perf_counter()
        copy = timed(state)
        snapshots.append(time.perf_counter() - started)
        return copy

    background.snapshot = timed_snapshot
    windows: list[tuple[float, float, bool]] = []  # (start, end, saving) in time.time()
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as out:
        main = build(cfg, Path(out))

        def client() -> None:
            api = main.api
            wait_until(lambda: api is not None and api._server is not None, "the API")
            assert api is not None
            url = api.url
            wait_until(
                lambda: all(
                    trainer["runs"] >= 1
                    for trainer in call_api(url + "/api/status")["threads"]["training"][
                        "trainers"
                    ].values()
                ),
                "every trainer's first run",
            )
            write_ms = []
            for _ in range(saves):
                snapshots.clear()
                started = time.time()
                number = call_api(url + "/api/save", "POST")["save_request"]

                def written(number: int = number) -> bool:
                    save = call_api(url + "/api/status")["checkpoint"]["save"]
                    return bool(
                        save
                        and save["number"] >= number
                        and save["state"] != "waiting"
                        and save["state"] != "writing"
                    )

                wait_until(written, f"save {number}")
                ended = time.time()
                save = call_api(url + "/api/status")["checkpoint"]["save"]
                if save["state"] != "written":
                    raise SystemExit(f"save failed: {save}")
                write_ms.append(save["write_seconds"] * 1e3)
                results["path"] = save["path"]
                results["snapshot_ms"] = max(results.get("snapshot_ms", 0.0), max(snapshots) * 1e3)
                windows.append((started, ended, True))
                time.sleep(ended - started)  # a quiet stretch as long as the save
                windows.append((ended, time.time(), False))
            results["write_ms"] = max(write_ms)
            results["state_mb"] = Path(results["path"]).stat().st_size / 1e6
            call_api(url + "/api/shutdown", "POST")

        thread = threading.Thread(target=client, name="client", daemon=True)
        thread.start()
        code = main.run()
        thread.join(60)
        background.snapshot = timed
        if code != 0:
            raise SystemExit(f"run failed (exit {code})")
        events = EventAccumulator(str(Path(out) / "tensorboard"), {"scalars": 0})
        events.Reload()
        gaps = [(e.wall_time, e.value) for e in events.Scalars("inference/step_interval")]

    def longest(saving: bool) -> float:
        found = [
            gap
            for end, gap in gaps
            for start_w, end_w, kind in windows
            if kind is saving and end - gap < end_w and end > start_w
        ]
        return max(found) * 1e3 if found else float("nan")

    return {
        "experiment": name,
        "state_mb": round(results["state_mb"], 1),
        "snapshot_ms": round(results["snapshot_ms"], 1),
        "write_ms": round(results["write_ms"], 1),
        "agent_max_gap_ms": round(longest(True), 2),
        "agent_max_gap_no_save_ms": round(longest(False), 2),
        "interval_ms": float(cfg.threads.inference.interval) * 1e3,
        "saves": saves,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--experiments", nargs="+", default=list(EXPERIMENTS), choices=EXPERIMENTS)
    parser.add_argument("--saves", type=int, default=3)
    args = parser.parse_args()
    sys.modules.setdefault("__main__", sys.modules[__name__])
    for name in args.experiments:
        print(json.dumps(measure(name, args.saves)), flush=True)


if __name__ == "__main__":
    main()
