"""Seconds per pair of innreg (model loaded) and ANTs SyN, interleaved pair by pair (run by hand).

Usage:
    python benchmarks/speed_pair.py MODEL.pt TEST.csv N_PAIRS ['{"translation_weight": 3.0}']

Interleaving puts both methods under the same machine load, so the ratio is fair even when the
absolute times are not (a shared machine). The optional JSON overrides the model's ``refine`` section.
Prints the median seconds of each and their ratio.
"""

from __future__ import annotations

import json
import statistics
import sys

import torch

from innreg import load_model
from innreg.baselines import make_method
from innreg.data import load_pair, read_manifest


def main(argv: list[str]) -> None:
    model_path, manifest, n_pairs, *overrides = argv
    torch.set_num_threads(1)
    model = load_model(model_path, "cpu", refine=json.loads(overrides[0]) if overrides else None)
    ants = make_method("ants-syn", dim=model.dim)
    times: dict[str, list[float]] = {"innreg": [], "ants-syn": []}
    for record in read_manifest(manifest)[: int(n_pairs)]:
        moving, fixed, moving_seg, _ = load_pair(record)
        times["innreg"].append(model.register(moving.array, fixed.array, moving_seg.array).seconds)
        times["ants-syn"].append(ants.register(moving.array, fixed.array, moving_seg.array).seconds)
    median = {k: statistics.median(v) for k, v in times.items()}
    print(f"innreg {median['innreg']:.3f} s/pair, ANTs SyN {median['ants-syn']:.3f} s/pair, "
          f"ratio {median['ants-syn'] / median['innreg']:.1f}x (medians over {len(times['innreg'])} pairs)")


if __name__ == "__main__":
    main(sys.argv[1:])
