"""Where one joint training step's time goes: data, step, and the operators that dominate (run by hand).

Usage:
    python benchmarks/profile_step.py TRAIN.csv [--dim 2|3] [--device cpu|cuda] [--steps N] [--rows N]
        [--data-workers N] [--data-only] [--sized-for cpu|cuda]

Builds the run's default config for the dim and device (``Config.sized_for``), draws batches as
training does, runs two warm-up steps, then times ``--steps`` steps (the GPU synchronised around each)
and profiles them with ``torch.profiler``: prints seconds per step for the data and for the step, and the
operators with the most self time (the GPU's where there is one). ``--data-workers`` overrides the
config's ``train.data_workers`` (the data time is then the wait for the next batch); ``--data-only``
times the batches alone, as if the step took no time (the data's throughput); ``--sized-for cuda``
takes the GPU's config on a CPU (e.g. to time the GPU's full-resolution 3D batches here).
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
    parser.add_argument("--data-workers", type=int, default=None)
    parser.add_argument("--data-only", action="store_true")
    parser.add_argument("--sized-for", default=None, help="device type whose defaults to use (default: --device's)")
    args = parser.parse_args()
    from innreg.batches import PairBatches
    from innreg.config import Config
    from innreg.data import read_manifest
    from innreg.training import build_state, train_step

    device = torch.device(args.device)
    config = Config.sized_for(args.dim, args.sized_for or device.type)
    if args.data_workers is not None:
        config = config.updated(train={"data_workers": args.data_workers})
    batches = PairBatches(read_manifest(args.manifest), config, device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    if args.data_only:
        for step in range(2):  # loading and the workers' start, not timed
            batches(step)
        start = time.perf_counter()
        for step in range(2, 2 + args.steps):
            batches(step)
        print(f"{args.dim}D data on {device}, {config.train.data_workers} workers: "
              f"{(time.perf_counter() - start) / args.steps:.3f} s/batch (mean of {args.steps})")
        return
    state = build_state(config, device)
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
