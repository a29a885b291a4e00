"""How fast a pause is acknowledged mid-training, and how close steps stay to their grid.

The timing claims that the tests no longer make (they assert behaviour only, so that a
busy machine cannot fail them): a pause should be acknowledged within about one
optimizer step (target 100 ms), and each agent step should start on its absolute
deadline ``start + k * interval``.

Builds the default experiment (world model and curious agent training) through the same
``build()`` a launch uses, with the control API on a free loopback port. After
``--warmup`` seconds a client pauses and resumes ``--pauses`` times at irregular
moments (``POST /api/pause`` answers once both threads have parked, with
``ack_seconds``), then shuts the run down. Gaps between step starts come back from the
run's ``inference/step_interval`` chart; a gap's phase error is its distance from a
whole number of intervals, as a fraction of one (on the grid it is 0; gaps across a
resume start a new grid and are left out).

Prints one JSON line: ``pauses``, ``unacknowledged``, ``ack_ms_{p50,p90,max}``,
``steps``, ``phase_error_{p50,p99,max}``, ``overruns``.

Usage: ``python benchmarks/pause.py [--pauses 20] [--warmup 10] [override ...]``
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import threading
import time
from pathlib import Path

from hydra import compose, initialize_config_dir
from measuring import call_api, percentile
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from ami.experiment import build

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pauses", type=int, default=20)
    parser.add_argument("--warmup", type=float, default=10.0)
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    overrides = ["web_api.port=0", "max_uptime=null", *args.overrides]
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("launch", overrides=overrides)
    interval = float(cfg.threads.inference.interval)
    acks: list[tuple[bool, float]] = []
    resumes: list[float] = []
    with tempfile.TemporaryDirectory() as out:
        main_thread = build(cfg, Path(out))

        def client() -> None:
            while main_thread._started_at is None or main_thread.api is None:
                time.sleep(0.05)
            url = main_thread.api.url
            time.sleep(args.warmup)
            rng = random.Random(0)
            for _ in range(args.pauses):
                reply = call_api(url + "/api/pause", "POST")
                acks.append((bool(reply["acknowledged"]), float(reply["ack_seconds"])))
                time.sleep(0.2)
                call_api(url + "/api/resume", "POST")
                resumes.append(time.time())
                time.sleep(rng.uniform(0.3, 1.5))
            call_api(url + "/api/shutdown", "POST")

        thread = threading.Thread(target=client, name="client", daemon=True)
        thread.start()
        code = main_thread.run()
        thread.join(60)
        if code != 0 or len(acks) != args.pauses:
            raise SystemExit(f"run failed (exit {code}) or ended before the pauses")
        events = EventAccumulator(str(Path(out) / "tensorboard"))
        events.Reload()
        intervals = events.Scalars("inference/step_interval")
        overruns = max((e.value for e in events.Scalars("inference/overruns")), default=0.0)
    phases = []
    for event in intervals:
        if any(0 <= event.wall_time - resumed < 2 * interval for resumed in resumes):
            continue  # the first steps after a resume start a new grid
        slots = event.value / interval
        phases.append(abs(slots - round(slots)))
    ack_ms = [seconds * 1000 for _, seconds in acks]
    print(
        json.dumps(
            {
                "pauses": len(acks),
                "unacknowledged": sum(not ok for ok, _ in acks),
                "ack_ms_p50": round(statistics.median(ack_ms), 1),
                "ack_ms_p90": round(percentile(ack_ms, 90), 1),
                "ack_ms_max": round(max(ack_ms), 1),
                "steps": len(intervals),
                "phase_error_p50": round(percentile(phases, 50), 4),
                "phase_error_p99": round(percentile(phases, 99), 4),
                "phase_error_max": round(max(phases), 4),
                "overruns": int(overruns),
            }
        )
    )


if __name__ == "__main__":
    main()
