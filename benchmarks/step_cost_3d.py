"""CPU cost of one 3D training step (data + train_step) at a given model.input_factor, one thread.

Usage: python benchmarks/step_cost_3d.py TRAIN_CSV FACTOR [BATCH_SIZE]  (prints 3 steps; the first
includes loading the volumes). Used for benchmarks/scale3d.md.
"""

from __future__ import annotations

import resource
import sys
import time

import torch

from innreg.config import Config
from innreg.data import read_manifest
from innreg.batches import PairBatches
from innreg.training import build_state, train_step


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main(manifest: str, factor: int, batch_size: int = 2) -> None:
    torch.set_num_threads(1)
    config = Config().updated(model={"dim": 3, "input_factor": factor}, train={"device": "cpu", "batch_size": batch_size})
    state = build_state(config, torch.device("cpu"))
    batches = PairBatches(read_manifest(manifest), config, torch.device("cpu"))
    for step in range(3):
        t0, c0 = time.perf_counter(), _cpu()
        moving, fixed = batches(step)
        t1, c1 = time.perf_counter(), _cpu()
        train_step(state, moving, fixed, config)
        t2, c2 = time.perf_counter(), _cpu()
        print(f"step {step} grid {tuple(moving.shape[2:])}: data {t1 - t0:.2f} s wall / {c1 - c0:.2f} s CPU, "
              f"step {t2 - t1:.2f} s wall / {c2 - c1:.2f} s CPU", flush=True)  # fmt: skip


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), *(int(v) for v in sys.argv[3:4]))
