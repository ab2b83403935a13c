"""Memory and time of backprop through the INN translator, stored activations vs memory-efficient.

``INNTranslator(dim=3)`` with its defaults (4 blocks of LU 1x1 conv + affine coupling, DDC subnets,
hidden 32, kernel 5) on one ``96^3`` volume, batch 1, one forward + backward of a mean-square loss
(gradients w.r.t. all parameters), ``memory_efficient=False`` (plain autograd, every block's
activations kept) vs ``True`` (only the stack's output kept, activations rebuilt with the exact
inverse in backward; :mod:`innreg.nn.reversible`).

Each variant runs in a fresh subprocess and is measured two ways:

* **extra RSS**: the process's peak resident size during its first forward + backward (``VmHWM``,
  high-water mark reset through ``/proc/self/clear_refs``) minus its resident size just before, with
  the model and the input built: the extra RAM the pass needs (activations, gradients, workspace,
  allocator slack).
  Measured twice: with glibc's ``default`` allocator, whose dynamic mmap threshold keeps freed
  activation memory in the heap (allocator slack counts as extra RSS, and depends on the allocation
  order), and with ``mmap`` (``MALLOC_MMAP_THRESHOLD_=65536``: every large tensor is its own mapping,
  returned on free), where the peak RSS follows the live tensors, i.e. what the pass really needs.
* **saved tensors**: the bytes autograd keeps for backward at the end of a forward pass, counted with
  ``torch.autograd.graph.saved_tensors_hooks`` (allocator-independent; parameters counted too).
* **time**: median of ``--repeats`` further forward + backward passes (default allocator rows are the
  representative ones; ``mmap`` pays a page fault per fresh tensor).

Example (2 cores, ~2 minutes)::

    python benchmarks/bench_reversible.py --output benchmarks/reversible.md
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_networks import _cpu_name, _rss_kib  # noqa: E402  (shared /proc helpers)

VARIANTS = ("stored", "memory-efficient")
ALLOCATORS = {"default": {}, "mmap": {"MALLOC_MMAP_THRESHOLD_": "65536"}}


def worker(variant: str, size: tuple[int, ...], threads: int, repeats: int) -> dict:
    """Measure one variant in this process; returns the result row."""
    import torch

    from innreg.nn import INNTranslator

    torch.manual_seed(0)
    torch.set_num_threads(threads)
    model = INNTranslator(dim=len(size), memory_efficient=variant == "memory-efficient").train()
    x = torch.rand(1, 1, *size)

    def step() -> None:
        model.zero_grad(set_to_none=True)
        model(x).square().mean().backward()

    # Memory first, on the process's first pass: a warm-up would leave freed activations in the
    # allocator, inside the "before" figure.
    Path("/proc/self/clear_refs").write_text("5")  # reset the resident-size high-water mark
    before = _rss_kib("VmRSS")
    step()
    peak = _rss_kib("VmHWM")

    saved = 0

    def pack(t: torch.Tensor) -> torch.Tensor:
        nonlocal saved
        saved += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = model(x).square().mean()  # forward only: what autograd keeps until backward
    del loss
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return {
        "variant": variant,
        "size": "x".join(map(str, size)),
        "median_s": statistics.median(times),
        "extra_rss_mib": (peak - before) / 1024,
        "saved_mib": saved / 2**20,
        "params": sum(p.numel() for p in model.parameters()),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", default="96x96x96")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--output", type=Path, help="write a Markdown report here")
    parser.add_argument("--worker", choices=VARIANTS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    size = tuple(int(v) for v in args.size.split("x"))
    if args.worker:
        print(json.dumps(worker(args.worker, size, args.threads, args.repeats)))
        return

    rows = {}
    for allocator, env in ALLOCATORS.items():
        for variant in VARIANTS:
            cmd = [sys.executable, __file__, "--worker", variant, "--size", args.size,
                   "--threads", str(args.threads), "--repeats", str(args.repeats)]  # fmt: skip
            out = subprocess.run(cmd, check=True, capture_output=True, text=True, env={**os.environ, **env})
            rows[allocator, variant] = {**json.loads(out.stdout.strip().splitlines()[-1]), "allocator": allocator}
            print(rows[allocator, variant], flush=True)
    lines = [
        "| variant | allocator | size | params | forward+backward median (s) | extra RSS (MiB) | saved for backward (MiB) |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    for r in rows.values():
        lines.append(
            f"| {r['variant']} | {r['allocator']} | {r['size']} | {r['params']:,} | {r['median_s']:.2f} | "
            f"{r['extra_rss_mib']:.0f} | {r['saved_mib']:.1f} |"
        )
    ratios = []
    for allocator in ALLOCATORS:
        stored, efficient = rows[allocator, "stored"], rows[allocator, "memory-efficient"]
        ratios.append(
            f"{allocator} allocator: extra RSS {efficient['extra_rss_mib'] / stored['extra_rss_mib']:.1%}, "
            f"time {efficient['median_s'] / stored['median_s']:.2f}x"
        )
    stored, efficient = rows["default", "stored"], rows["default", "memory-efficient"]
    summary = (
        "Memory-efficient / stored: " + "; ".join(ratios)
        + f"; saved tensors {efficient['saved_mib'] / stored['saved_mib']:.1%}."
    )
    table = "\n".join(lines)
    print(table + "\n\n" + summary)
    if args.output:
        import torch

        command = "python benchmarks/bench_reversible.py " + " ".join(sys.argv[1:])
        args.output.write_text(
            "# Memory-efficient invertible backprop (CPU)\n\n"
            f"Command: `{command}`\n\n"
            f"Machine: {_cpu_name()}, {os.cpu_count()} cores, {args.threads} threads, torch {torch.__version__}, "
            f"other engineers' jobs shared the machine, so "
            "times are indicative, memory is not affected.\n\n"
            + __doc__.split("Example")[0].split("\n", 2)[2]
            + "\n" + table + "\n\n" + summary + "\n"
        )


if __name__ == "__main__":
    main()
