"""How often a two-rank gloo run aborts at the interpreter's exit, by what is alive at
``destroy_process_group`` (the cause of a rare failure of ``tests/test_distributed.py``'s torchrun test).

Each launch: ``torchrun --nproc_per_node=2`` of this file with ``--rank-body VARIANT``: a small
DDP-wrapped CNN takes 4 steps, then barrier and ``destroy_process_group`` with the wrapper

* ``keep``: still referenced (what ``innreg.training`` did before),
* ``del``: deleted, not collected (DDP sits in reference cycles),
* ``collect``: deleted and garbage-collected (what :func:`innreg.distributed.teardown` does now).

An abort shows as "terminate called without an active exception" and a non-zero torchrun exit.
Usage: ``python benchmarks/gloo_exit_abort.py [LAUNCHES_PER_VARIANT]`` (about 3.5 s per launch).
"""

from __future__ import annotations

import gc
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path


def rank_body(variant: str) -> None:
    import torch
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    ddp = torch.nn.parallel.DistributedDataParallel(
        torch.nn.Sequential(torch.nn.Conv2d(1, 8, 3), torch.nn.ReLU(), torch.nn.Conv2d(8, 1, 3))
    )
    for _ in range(4):
        ddp(torch.randn(1, 1, 32, 32)).sum().backward()
    if variant in ("del", "collect"):
        del ddp
    if variant == "collect":
        gc.collect()
    dist.barrier()
    dist.destroy_process_group()


def main(launches: int) -> None:
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or "torchrun"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    print("| wrapper at destroy_process_group | aborted launches |\n| --- | --- |")
    for variant in ("keep", "del", "collect"):
        failed = 0
        for _ in range(launches):
            port = random.randint(29000, 39000)
            cmd = [torchrun, "--nproc_per_node=2", f"--master_port={port}", __file__, "--rank-body", variant]
            failed += subprocess.run(cmd, capture_output=True, env=env).returncode != 0
        print(f"| {variant} | {failed} of {launches} |", flush=True)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--rank-body":
        rank_body(sys.argv[2])
    else:
        main(int(sys.argv[1]) if len(sys.argv) > 1 else 40)
