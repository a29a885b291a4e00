"""Launch an experiment: ``python scripts/launch.py [group=option ...] [key=value ...]``.

Examples:
    python scripts/launch.py                                   # default experiment, sim world
    python scripts/launch.py model=world_model buffer=random   # the canonical call
    python scripts/launch.py -m buffer=random,sequential max_uptime=60   # a sweep
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("AMI_ROOT", str(ROOT))

import hydra  # noqa: E402
from hydra.core.hydra_config import HydraConfig  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

from ami.experiment import run  # noqa: E402


@hydra.main(version_base="1.3", config_path="../conf", config_name="launch")
def main(cfg: DictConfig) -> None:
    code = run(cfg, Path(HydraConfig.get().runtime.output_dir))
    if code != 0:
        sys.exit(code)


if __name__ == "__main__":
    main()
