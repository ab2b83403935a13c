"""Where one joint training step's time goes: data, step, and the operators that dominate (run by hand).

Usage:
    python benchmarks/profile_step.py TRAIN.csv [--dim 2|3] [--device cpu|cuda] [--steps N] [--rows N]

Builds the run's default config for the dim and device (``Config.sized_for``), draws batches as
training does, runs two warm-up steps, then times ``--steps`` steps (the GPU synchronised around each)
and profiles them with ``torch.profiler``: prints seconds per step for the data and for the step, and the
operators with the most self time (the GPU's where there is one).
"""

from __future__ import annotations

import argparse
import time

import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("manifest")
    parser.add_argument("--dim", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--rows", type=int, default=25)
    args = parser.parse_args()
    from innreg.batches import PairBatches
    from innreg.config import Config
    from innreg.data import read_manifest
    from innreg.training import build_state, train_step

    device = torch.device(args.device)
    config = Config.sized_for(args.dim, device.type)
    state = build_state(config, device)
    batches = PairBatches(read_manifest(args.manifest), config, device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for step in range(2):
        train_step(state, *batches(step), config)
    seconds = {"data": 0.0, "step": 0.0}
    activities = [torch.profiler.ProfilerActivity.CPU]
    if device.type == "cuda":
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    with torch.profiler.profile(activities=activities) as prof:
        for step in range(2, 2 + args.steps):
            sync()
            start = time.perf_counter()
            moving, fixed = batches(step)
            sync()
            middle = time.perf_counter()
            train_step(state, moving, fixed, config)
            sync()
            seconds["data"] += middle - start
            seconds["step"] += time.perf_counter() - middle
    print(f"{args.dim}D on {device}, shape {tuple(moving.shape)}: data {seconds['data'] / args.steps:.3f} s/step, "
          f"step {seconds['step'] / args.steps:.3f} s/step (mean of {args.steps}, profiler on)")
    key = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    print(prof.key_averages().table(sort_by=key, row_limit=args.rows, max_name_column_width=60))


if __name__ == "__main__":
    main()
