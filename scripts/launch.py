"""Launch an experiment: ``python scripts/launch.py [group=option ...] [key=value ...]``.

Examples:
    python scripts/launch.py                                   # default experiment, sim world
    python scripts/launch.py model=world_model buffer=random   # the canonical call
    python scripts/launch.py -m buffer=random,sequential max_uptime=60   # a sweep
"""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("AMI_ROOT", str(ROOT))

import hydra  # noqa: E402
from hydra.core.hydra_config import HydraConfig  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

from ami.experiment import RunFailed, run  # noqa: E402


@hydra.main(version_base="1.3", config_path="../conf", config_name="launch")
def main(cfg: DictConfig) -> None:
    output_dir = Path(HydraConfig.get().runtime.output_dir)
    if run(cfg, output_dir) != 0:
        # An exception, not sys.exit: in a sweep Hydra records it and runs the other jobs.
        raise RunFailed(f"the run failed; see the logs in {output_dir}")


if __name__ == "__main__":
    main()
