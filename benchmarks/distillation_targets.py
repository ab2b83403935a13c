"""Dice of the 3D affine distillation's targets against the affine stage they train (run by hand).

Usage:
    python benchmarks/distillation_targets.py RUN TEST.csv

For each test pair, on the networks' working grid (``model.input_factor``), as the distillation sees a pair:
the affine stage of the network as the distillation found it (the ``reference`` kept in
``RUN/distillation_checkpoint.pt``), and the affine target made from it (that stage followed by the
refinement's affine correction, :func:`innreg.distillation.refined_targets`) with the correction's levels
as configured on the working grid (the design before commit ea38633) and at their inference voxel sizes
(:func:`innreg.pipeline.affine_start_refinement`, as the distillation makes them today). Each map is carried
to the full grid and applied to the moving labels; prints the mean Dice per pair and over the pairs (RESULTS.md
section 29).
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import numpy as np
import torch

from innreg import load_model
from innreg.chain import StageChain
from innreg.core.affine import rescale_affine
from innreg.core.transform import Transform
from innreg.core.warp import warp
from innreg.data import PairDataset, load_pair, pair_records
from innreg.loop import read_checkpoint
from innreg.metrics import dice_per_label, mean_ignore_nan
from innreg.model import MIN_NETWORK_SIZE
from innreg.pipeline import NetworkPart, NetworkStage, affine_start_refinement, stage_pair
from innreg.refinement import AffineCorrection


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run", type=Path, help="a run folder with model.pt and distillation_checkpoint.pt")
    parser.add_argument("manifest", help="test pairs with moving_seg and fixed_seg")
    args = parser.parse_args()
    torch.set_num_threads(1)
    loaded = load_model(args.run / "model.pt", "cpu")
    model, config = loaded.model, loaded.config
    saved = read_checkpoint(args.run / "distillation_checkpoint.pt", "distil")
    model.registration.load_state_dict(saved["parts"]["reference"])
    model.eval()
    factor = config.model.input_factor
    records = pair_records(args.manifest)
    working = PairDataset(records, dim=config.model.dim, factor=factor, min_size=MIN_NETWORK_SIZE)
    scores: dict[str, list[float]] = {}
    for index, record in enumerate(records):
        sample = working.sample(index, 0)
        moving, fixed = sample["moving"][None], sample["fixed"][None]
        _, _, moving_seg, fixed_seg = load_pair(record)
        full, small = tuple(fixed_seg.array.shape), tuple(fixed.shape[2:])
        pair = stage_pair(model, moving, fixed, factor=1)
        with torch.no_grad():
            start = NetworkStage(model, NetworkPart.AFFINE, factor=1)
            maps = {
                "affine stage": start(pair, False),
                "target, configured levels": StageChain([start, AffineCorrection(config.refine)])(pair, False),
                "target, inference voxel sizes": affine_start_refinement(model, moving, fixed, config.refine, False)[0],
            }
        labels = torch.from_numpy(np.asarray(moving_seg.array, np.float32))[None, None]
        row = {}
        for name, transform in maps.items():
            to_full = Transform.from_affine(*rescale_affine(*transform.affine, small, full), full, False)
            warped = warp(labels, to_full.ddf, mode="nearest")[0, 0].numpy()
            row[name] = mean_ignore_nan(dice_per_label(warped, fixed_seg.array))
            scores.setdefault(name, []).append(row[name])
        print(index, {name: round(value, 3) for name, value in row.items()}, flush=True)
    print("mean Dice:", {name: round(statistics.mean(values), 3) for name, values in scores.items()})


if __name__ == "__main__":
    main()
