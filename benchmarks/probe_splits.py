"""Where a run's encoder holds the agent's position: the pose probe under other splits.

The run's own probe (``eval/probe_r2/position``, :mod:`ami.evaluation`) fits on the
earliest 80% of the held-out frames and scores on the latest 20%: a map learnt on the
places seen first, carried to the places seen last. This diagnostic separates the two
things that score mixes, on fresh frames of the same world: is position in the latent
at all (a random split of frames from everywhere the agent went), and does a linear map
carry to rooms it was not fitted on (a split by cell, and by order of first visit).

It rebuilds the run's sim world and encoder from ``config.yaml`` and the newest
checkpoint in ``checkpoints/``, renders ``--per-cell`` frames at random spots and
headings in every cell the agent entered, encodes them and fits the same ridge probe
(:func:`~ami.evaluation.probe.ridge_r2`) on each split. The same probe on the frames
themselves, average-pooled to 7x7, is the baseline a learnt latent should beat.
Prints one JSON line:

- ``position_r2_by_first_visit``: fitted on the cells entered first (80% of the cells),
  scored on the frames of the cells entered last, as the run's own probe splits time;
- ``position_r2_random_cells``: fitted on a random 80% of the cells, scored on the rest;
- ``position_r2_random_frames``: fitted on a random 80% of the frames, scored on the
  rest (the same cells on both sides: is position there at all);
- ``heading_r2_random_frames``: the heading (cos, sin) on that split;
- ``pixels_*``: the same four on pooled pixels.

Example:
    python benchmarks/probe_splits.py logs/benchmarks/learning/<stamp>_compare/curiosity_seed0
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import numpy.typing as npt

import ami  # noqa: F401  (first: it sets OpenMP's wait policy before torch loads)

# isort: split
import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from omegaconf import OmegaConf

from ami.checkpoints.file_format import read
from ami.evaluation.probe import ridge_r2
from ami.interaction.spaces import IMAGE
from ami.interaction.worlds import SimEnvironment


def frames_in_visited_cells(
    environment: SimEnvironment, visited: list[list[int]], per_cell: int, seed: int
) -> tuple[torch.Tensor, torch.Tensor, npt.NDArray[np.intp]]:
    """Frames at random spots and headings in each cell; their poses; their cells' index.

    ``visited`` is in order of first visit, so a cell's index is its rank in that order.
    """
    world = environment.world
    rng = np.random.default_rng(seed)
    frames, poses, cells = [], [], []
    for index, (cell_x, cell_y) in enumerate(visited):
        placed, tries = 0, 0
        while placed < per_cell and tries < 100 * per_cell:
            tries += 1
            x, y = cell_x + rng.uniform(0.1, 0.9), cell_y + rng.uniform(0.1, 0.9)
            try:
                world.place(x, y, rng.uniform(0.0, 360.0))
            except ValueError:  # too close to a wall: another spot
                continue
            frames.append(environment.observe()[IMAGE])
            poses.append(environment.truth()["pose"])
            cells.append(index)
            placed += 1
    return torch.stack(frames), torch.stack(poses), np.array(cells)


def probe(
    features: torch.Tensor,
    targets: torch.Tensor,
    fit: npt.NDArray[np.intp],
    score: npt.NDArray[np.intp],
) -> float | None:
    """R^2 of the run's ridge probe fitted on rows ``fit``, scored on rows ``score``."""
    rows = torch.from_numpy(np.concatenate([fit, score]))
    return ridge_r2(features[rows], targets[rows], fit_rows=len(fit))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run_dir", type=Path, help="a run folder of benchmarks/learning.py")
    parser.add_argument("--per-cell", type=int, default=12, help="frames per visited cell")
    parser.add_argument("--seed", type=int, default=0, help="seed of the spots and the splits")
    args = parser.parse_args()
    config_path = args.run_dir / "config.yaml"
    checkpoints = sorted((args.run_dir / "checkpoints").glob("*.ckpt"))
    if not config_path.is_file() or not checkpoints:
        parser.error(f"{args.run_dir}: expected config.yaml and checkpoints/*.ckpt in a run folder")
    if args.per_cell < 1:
        parser.error(f"--per-cell {args.per_cell}: expected a whole number >= 1")
    cfg = OmegaConf.load(config_path)
    environment = instantiate(cfg.interaction.environment)
    if not isinstance(environment, SimEnvironment):
        world = type(environment).__name__
        parser.error(f"{args.run_dir}: the run's world is {world}; this needs the sim")
    state = read(checkpoints[-1])
    encoder = instantiate(cfg.model.models.encoder)
    # The training copy when it differs from the published one: the run's own probe
    # encodes with it.
    entry = state["training"]["models"]["models"]["encoder"]
    encoder.load_state_dict(entry["training"] or entry["published"])
    encoder.eval()
    world_state = state["inference"]["environment"]
    order = np.argsort(world_state["first_visit"], kind="stable")
    visited = [world_state["visited"][i] for i in order]
    frames, poses, cells = frames_in_visited_cells(environment, visited, args.per_cell, args.seed)
    with torch.no_grad():
        latents = encoder(frames).flatten(1)
    pixels = F.avg_pool2d(frames, 12).flatten(1)

    rng = np.random.default_rng(args.seed)
    rows = np.arange(len(frames))
    first_cut = int(0.8 * len(visited))
    by_visit = rows[cells < first_cut], rows[cells >= first_cut]
    chosen = np.isin(cells, rng.permutation(len(visited))[:first_cut])
    by_cell = rows[chosen], rows[~chosen]
    shuffled = rng.permutation(rows)
    by_frame = shuffled[: int(0.8 * len(rows))], shuffled[int(0.8 * len(rows)) :]
    position, heading = poses[:, :2], poses[:, 2:]
    result: dict[str, object] = {
        "run_dir": str(args.run_dir),
        "checkpoint": checkpoints[-1].name,
        "cells": len(visited),
        "frames": len(frames),
        "latent_size": latents.shape[1],
    }
    for name, features in (("", latents), ("pixels_", pixels)):
        result[f"{name}position_r2_by_first_visit"] = probe(features, position, *by_visit)
        result[f"{name}position_r2_random_cells"] = probe(features, position, *by_cell)
        result[f"{name}position_r2_random_frames"] = probe(features, position, *by_frame)
        result[f"{name}heading_r2_random_frames"] = probe(features, heading, *by_frame)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
