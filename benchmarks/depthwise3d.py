"""Forward + backward seconds of the DDC's 3D depthwise convolution by implementation (run by hand, on a GPU).

Usage:
    python benchmarks/depthwise3d.py [--shape N C D H W] [--kernel K] [--repeats R] [--device cuda]

On an H200, 63 % of a full-resolution 3D joint step's GPU time went to cuDNN's generic N-d kernel for
these convolutions, one launch per channel group (RESULTS.md section 20). This times, on the shape of the
INN's hidden features for a 96x128x64 volume (after the Haar squeeze: 48x64x32, 32 channels, one sample
as DynamicDepthwiseConv runs them), each way PyTorch offers:

* ``cudnn``: ``torch.convolution`` with groups = channels, as ``innreg.nn.ddc.depthwise_conv`` runs on a GPU;
* ``native``: the same with cuDNN off, so PyTorch's own CUDA depthwise 3D kernel runs;
* ``channels_last``: cuDNN on channels-last-3d tensors.

Each one's output and gradients are checked against ``cudnn`` (max abs difference printed), so a fast
but wrong variant shows. Times are medians of ``--repeats`` runs after three warm-ups, the GPU
synchronised before and after each.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time

import torch


def depthwise(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    dim = x.dim() - 2
    pad = [k // 2 for k in weight.shape[2:]]
    return torch.convolution(x, weight, None, [1] * dim, pad, [1] * dim, False, [0] * dim, x.shape[1])


VARIANTS = {
    "cudnn": (contextlib.nullcontext, torch.contiguous_format),
    "native": (lambda: torch.backends.cudnn.flags(enabled=False), torch.contiguous_format),
    "channels_last": (contextlib.nullcontext, torch.channels_last_3d),
}


def run(name: str, x: torch.Tensor, weight: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Output, input gradient and weight gradient of one forward + backward pass of variant ``name``."""
    context, memory_format = VARIANTS[name]
    xv = x.detach().to(memory_format=memory_format).requires_grad_()
    wv = weight.detach().clone().requires_grad_()
    with context():
        out = depthwise(xv, wv)
        out.backward(torch.ones_like(out))
    return out.detach(), xv.grad, wv.grad


def seconds(name: str, x: torch.Tensor, weight: torch.Tensor, repeats: int) -> float:
    sync = torch.cuda.synchronize if x.is_cuda else (lambda: None)
    times = []
    for k in range(3 + repeats):
        sync()
        start = time.perf_counter()
        run(name, x, weight)
        sync()
        if k >= 3:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shape", type=int, nargs=5, default=[1, 32, 48, 64, 32])
    parser.add_argument("--kernel", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--device", default="cuda")
    args = parser.parse_args()
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(args.shape, generator=gen).to(args.device)
    weight = torch.randn((args.shape[1], 1, *[args.kernel] * 3), generator=gen).to(args.device)
    reference = run("cudnn", x, weight)
    print(f"shape {tuple(args.shape)}, kernel {args.kernel}^3, {args.device}")
    print("| variant | ms fwd+bwd | max abs diff (out, dx, dw) vs cudnn |\n| --- | --- | --- |")
    for name in VARIANTS:
        diffs = [float((a - b).abs().max()) for a, b in zip(run(name, x, weight), reference)]
        print(f"| {name} | {1e3 * seconds(name, x, weight, args.repeats):.2f} | "
              f"{', '.join(f'{d:.1e}' for d in diffs)} |")


if __name__ == "__main__":
    main()
