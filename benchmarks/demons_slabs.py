"""Seconds per pair with the demons update in one piece and in slabs, interleaved (run by hand).

Usage:
    python benchmarks/demons_slabs.py MODEL.pt TEST.csv N_PAIRS [REPEATS]

Registers the first ``N_PAIRS`` pairs of ``TEST.csv`` ``REPEATS`` times (default 2) with
``innreg.demons.demons_update`` computed in one piece and in slabs (the default on a CPU), alternating
which goes first, one thread; prints the medians, their ratio and the largest difference of the two
pipelines' displacement fields (voxels). The slabs change where the update's channel passes run, not
what they compute, so the difference should be 0 or rounding.
"""

from __future__ import annotations

import statistics
import sys

import numpy as np
import torch

import innreg.demons as demons
from innreg import load_model
from innreg.data import load_pair, read_manifest


def main() -> None:
    model_path, manifest, n_pairs = sys.argv[1], sys.argv[2], int(sys.argv[3])
    repeats = int(sys.argv[4]) if len(sys.argv) > 4 else 2
    torch.set_num_threads(1)
    model = load_model(model_path, "cpu")
    settings = {"one piece": 1 << 62, "slabs": demons._SLAB_VOXELS}
    times: dict[str, list[float]] = {name: [] for name in settings}
    largest = 0.0
    for repeat in range(repeats):
        for record in read_manifest(manifest)[:n_pairs]:
            moving, fixed, seg, _ = load_pair(record)
            fields = {}
            for name in sorted(settings, reverse=repeat % 2 == 1):
                demons._SLAB_VOXELS = settings[name]
                result = model.register(moving.array, fixed.array, seg.array)
                times[name].append(result.seconds)
                fields[name] = result.ddf
            largest = max(largest, float(np.abs(fields["slabs"] - fields["one piece"]).max()))
    median = {name: statistics.median(t) for name, t in times.items()}
    print(f"one piece {median['one piece']:.2f} s/pair, slabs {median['slabs']:.2f} s/pair, "
          f"ratio {median['one piece'] / median['slabs']:.3f} (medians of {len(times['slabs'])} runs); "
          f"largest field difference {largest:.2g} voxels")


if __name__ == "__main__":
    main()
