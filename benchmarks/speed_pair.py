"""Seconds per pair of innreg (model loaded) and ANTs SyN, interleaved pair by pair (run by hand).

Usage:
    python benchmarks/speed_pair.py MODEL.pt TEST.csv N_PAIRS ['{"translation_weight": 3.0}'] [--threads N]
        [--device cpu|cuda] [--innreg-only]

Interleaving puts both methods under the same machine load, so the ratio is fair even when the
absolute times are not (a shared machine). The optional JSON overrides the model's ``refine`` section.
``--threads N`` (default 1) gives both methods the same N CPU threads (torch's intra-op threads for
innreg, ITK's for ANTs SyN): the two scale differently with threads (ANTs' multithreading against
innreg's small 2D operations), so the ratio may depend on them; measured here up to two (RESULTS.md
section 4). Prints the median seconds of each and their ratio. ``--device cuda`` runs innreg on the GPU
(ANTs stays on the CPU); ``--innreg-only`` times innreg alone (where ANTsPy is not installed), each pair
registered twice and the second time kept, so the first pair's one-off CUDA start-up is not counted.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model")
    parser.add_argument("manifest")
    parser.add_argument("n_pairs", type=int)
    parser.add_argument("refine", nargs="?", default=None, help="JSON overrides of the refine section")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu", help="innreg's device (default cpu)")
    parser.add_argument("--innreg-only", action="store_true", help="time innreg alone (no ANTs SyN)")
    args = parser.parse_args()
    # ITK reads its thread count once, when ANTs first runs: set it before anything imports ANTs.
    os.environ["ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"] = str(args.threads)
    import torch

    from innreg import load_model
    from innreg.baselines import make_method
    from innreg.data import load_pair, read_manifest

    torch.set_num_threads(args.threads)
    model = load_model(args.model, args.device, refine=json.loads(args.refine) if args.refine else None)
    ants = None if args.innreg_only else make_method("ants-syn", dim=model.dim)
    times: dict[str, list[float]] = {"innreg": [], "ants-syn": []}
    for record in read_manifest(args.manifest)[: args.n_pairs]:
        moving, fixed, moving_seg, _ = load_pair(record)
        for _ in range(2 if ants is None else 1):
            seconds = model.register(moving.array, fixed.array, moving_seg.array).seconds
        times["innreg"].append(seconds)
        if ants is not None:
            times["ants-syn"].append(ants.register(moving.array, fixed.array, moving_seg.array).seconds)
    if ants is None:
        print(f"innreg {statistics.median(times['innreg']):.4f} s/pair on {model.device} (median over "
              f"{len(times['innreg'])} pairs, each the second of two runs)")
        return
    median = {k: statistics.median(v) for k, v in times.items()}
    print(f"innreg {median['innreg']:.3f} s/pair, ANTs SyN {median['ants-syn']:.3f} s/pair, "
          f"ratio {median['ants-syn'] / median['innreg']:.1f}x (medians over {len(times['innreg'])} pairs, "
          f"{args.threads} thread{'s' if args.threads > 1 else ''} each)")


if __name__ == "__main__":
    main()
