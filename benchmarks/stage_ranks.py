"""Wall time of the translator stages on one process and under torchrun (run by hand).

Usage:
    python benchmarks/stage_ranks.py MODEL.pt TRAIN.csv STEPS
    torchrun --nproc_per_node=N benchmarks/stage_ranks.py MODEL.pt TRAIN.csv STEPS

Runs the translator stages of ``innreg.training`` (``train.translator_rounds`` rounds of alignment, then
``STEPS`` translator steps) from a trained model, on CPU, and prints per rank the pairs it aligned, the
seconds of its alignment and of its translator loops, and the final translation L1. Each rank aligns
its own share of the pairs and draws its own batches (the effective batch is N times larger); nothing
is written. Results: ``benchmarks/RESULTS.md``, section 9b.
"""

from __future__ import annotations

import argparse
import time

import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model")
    parser.add_argument("manifest")
    parser.add_argument("steps", type=int)
    args = parser.parse_args()
    torch.set_num_threads(1)

    from innreg import distributed, translation_training
    from innreg.data import read_manifest
    from innreg.model_file import read_model

    saved = read_model(args.model)
    model = saved.network()
    steps = args.steps
    config = saved.config.updated(train={"translator_steps": steps, "steps": max(steps, saved.config.train.steps)})
    ctx, device = distributed.setup("cpu")
    align, timing = translation_training.align_pairs, {"pairs": 0, "seconds": 0.0}

    def timed_align(net, pairs, *rest, **kwargs):
        start = time.perf_counter()
        aligned = align(net, pairs, *rest, **kwargs)
        timing["seconds"] += time.perf_counter() - start
        timing["pairs"] = len(pairs)
        return aligned

    translation_training.align_pairs = timed_align
    start = time.perf_counter()
    rounds = translation_training.train_translator_stages(model, read_manifest(args.manifest), config, device, ctx=ctx)
    wall = time.perf_counter() - start
    loops = sum(loop.seconds for loop in rounds)
    l1 = rounds[-1].history[-1]["l1"]
    print(f"rank {ctx.rank} of {ctx.world_size}: {timing['pairs']} pairs aligned per round, alignment "
          f"{timing['seconds']:.1f} s, translator loops {loops:.1f} s ({len(rounds)} x {steps} steps), "
          f"stages {wall:.1f} s, final L1 {l1:.4f}", flush=True)
    distributed.teardown(ctx)


if __name__ == "__main__":
    main()
