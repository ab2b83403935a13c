"""Seconds per pair of innreg (model loaded) and ANTs SyN, interleaved pair by pair (run by hand).

Usage:
    python benchmarks/speed_pair.py MODEL.pt TEST.csv N_PAIRS ['{"translation_weight": 3.0}'] [--threads N]
        [--device cpu|cuda] [--innreg-only]
    python benchmarks/speed_pair.py MODEL.pt TEST.csv N_PAIRS '[{}, {"steps": [40, 30, 20, 8]}]'

Interleaving puts both methods under the same machine load, so the ratio is fair even when the
absolute times are not (a shared machine). The optional JSON overrides the model's ``refine`` section;
a list of overrides times each of them, all interleaved with ANTs SyN pair by pair (``{}``: as trained).
``--threads N`` (default 1) gives both methods the same N CPU threads (torch's intra-op threads for
innreg, ITK's for ANTs SyN): the two scale differently with threads (ANTs' multithreading against
innreg's small 2D operations), so the ratio may depend on them; measured here up to two (RESULTS.md
section 4). Prints the median seconds of each and their ratio, and innreg's median seconds by phase
(``RegistrationResult.phase_seconds``). ``--device cuda`` runs innreg on the GPU
(ANTs stays on the CPU); ``--innreg-only`` times innreg alone (where ANTsPy is not installed), each pair
registered twice and the second time kept, so the first pair's one-off CUDA start-up is not counted.
"""

from __future__ import annotations

import argparse
import json
import statistics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model")
    parser.add_argument("manifest")
    parser.add_argument("n_pairs", type=int)
    parser.add_argument("refine", nargs="?", default="{}", help="JSON overrides of the refine section, or a list")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu", help="innreg's device (default cpu)")
    parser.add_argument("--innreg-only", action="store_true", help="time innreg alone (no ANTs SyN)")
    args = parser.parse_args()
    from innreg import load_model
    from innreg.baselines import make_method
    from innreg.data import load_pair, read_manifest
    from innreg.threads import set_cpu_threads

    set_cpu_threads(args.threads)  # torch's and ITK's (ANTs')
    overrides = json.loads(args.refine)
    overrides = overrides if isinstance(overrides, list) else [overrides]
    models = {json.dumps(o): load_model(args.model, args.device, refine=o or None) for o in overrides}
    dim = next(iter(models.values())).dim
    ants = None if args.innreg_only else make_method("ants-syn", dim=dim)
    times: dict[str, list[float]] = {name: [] for name in [*models, "ants-syn"]}
    phases: dict[str, list[dict[str, float]]] = {name: [] for name in models}
    for record in read_manifest(args.manifest)[: args.n_pairs]:
        moving, fixed, moving_seg, _ = load_pair(record)
        for name, model in models.items():
            for _ in range(2 if ants is None else 1):
                result = model.register(moving.array, fixed.array, moving_seg.array)
            times[name].append(result.seconds)
            phases[name].append(result.phase_seconds)
        if ants is not None:
            times["ants-syn"].append(ants.register(moving.array, fixed.array, moving_seg.array).seconds)
    median = {k: statistics.median(v) for k, v in times.items() if v}
    for name, model in models.items():
        label = "innreg" if len(models) == 1 else f"innreg {name}"
        if ants is None:
            print(f"{label} {median[name]:.4f} s/pair on {model.device} (median over "
                  f"{len(times[name])} pairs, each the second of two runs)")
            continue
        print(f"{label} {median[name]:.3f} s/pair, ANTs SyN {median['ants-syn']:.3f} s/pair, "
              f"ratio {median['ants-syn'] / median[name]:.1f}x (medians over {len(times[name])} pairs, "
              f"{args.threads} thread{'s' if args.threads > 1 else ''} each)")
    for name, timed in phases.items():
        split = {phase: statistics.median(p.get(phase, 0.0) for p in timed) for phase in timed[0]}
        print(f"  {'innreg' if len(models) == 1 else name} by phase (medians): "
              + ", ".join(f"{phase} {seconds:.4f}" for phase, seconds in split.items()))


if __name__ == "__main__":
    main()
