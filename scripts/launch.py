"""Launch an experiment: ``python scripts/launch.py [group=option ...] [key=value ...]``.

Examples:
    python scripts/launch.py                                   # default experiment, sim world
    python scripts/launch.py model=world_model buffer=random   # the canonical call
    python scripts/launch.py -m buffer=random,sequential max_uptime=60   # a sweep
    python scripts/launch.py -m hydra/launcher=parallel seed=0,1,2,3 max_uptime=600
    python scripts/launch.py hparams_search=world_model_optuna max_uptime=300
"""

from __future__ import annotations

import faulthandler
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("AMI_ROOT", str(ROOT))

import hydra  # noqa: E402
from hydra.core.hydra_config import HydraConfig  # noqa: E402
from hydra.types import RunMode  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

from ami.experiment import RunFailed, run_outcome  # noqa: E402
from ami.sweeps import launch_and_report, sweep_job  # noqa: E402


@hydra.main(version_base="1.3", config_path="../conf", config_name="launch")
def main(cfg: DictConfig) -> float | None:
    hydra_cfg = HydraConfig.get()
    output_dir = Path(hydra_cfg.runtime.output_dir)
    if hydra_cfg.mode == RunMode.MULTIRUN:
        # Never raises for a failed run (the sweep's summary names it); returns the
        # optimized_metric for the Optuna sweeper; ends the sweep when interrupted.
        return sweep_job(cfg, output_dir, run_outcome)
    if run_outcome(cfg, output_dir).exit_code != 0:
        raise RunFailed(f"the run failed; see the logs in {output_dir}")
    return None


if __name__ == "__main__":
    # A native crash (a segfault or abort in torch, OpenCV, a driver) hours into a run
    # then prints every thread's Python stack to stderr instead of nothing.
    faulthandler.enable()
    sys.exit(launch_and_report(main))
