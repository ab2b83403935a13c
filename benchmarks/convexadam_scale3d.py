"""ConvexAdam (``convexadam`` package, MIND + convex + Adam, defaults, float32 on CPU) on a pair
manifest, scored like ``innreg evaluate`` (Dice over the fixed map's non-zero labels, HD95 in mm,
non-positive Jacobians). For benchmarks/scale3d.md. Usage: python convexadam_scale3d.py TEST_CSV"""

from __future__ import annotations

import sys
import time

import numpy as np
import torch
from convexAdam.convex_adam_MIND import convex_adam_pt
from scipy.ndimage import map_coordinates

from innreg.data import load_pair, normalize_percentile, read_manifest, voxel_spacing
from innreg.metrics import dice_per_label, hd95_per_label, neg_jacobian_fraction


def main(manifest: str) -> None:
    rows = []
    for record in read_manifest(manifest):
        moving, fixed, moving_seg, fixed_seg = load_pair(record)
        start = time.perf_counter()
        disp = convex_adam_pt(normalize_percentile(fixed.array), normalize_percentile(moving.array), dtype=torch.float32)
        grid = np.stack(np.meshgrid(*[np.arange(n) for n in fixed.array.shape], indexing="ij"))
        coords = grid + np.moveaxis(disp, -1, 0)  # pull-back, voxels of the fixed grid
        warped_seg = map_coordinates(moving_seg.array, coords, order=0)
        seconds = time.perf_counter() - start
        labels = [int(v) for v in np.unique(fixed_seg.array) if v != 0]
        dice = np.mean(list(dice_per_label(warped_seg, fixed_seg.array, labels).values()))
        hd95 = np.mean(list(hd95_per_label(warped_seg, fixed_seg.array, voxel_spacing(fixed), labels).values()))
        jac = neg_jacobian_fraction(torch.from_numpy(np.moveaxis(disp, -1, 0).copy())[None])
        rows.append((dice, hd95, jac, seconds))
        print(f"{record.moving}: Dice {dice:.3f} HD95 {hd95:.2f} Jac<=0 {100 * jac:.3f}% {seconds:.1f} s", flush=True)
    d, h, j, s = np.mean(rows, axis=0)
    print(f"mean over {len(rows)} pairs: Dice {d:.3f} HD95 {h:.2f} mm Jac<=0 {100 * j:.3f}% {s:.2f} s/pair")


if __name__ == "__main__":
    main(sys.argv[1])
