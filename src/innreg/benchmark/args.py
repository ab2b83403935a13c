"""The options of ``innreg benchmark`` and the dispatch from parsed arguments to a run."""

from __future__ import annotations

import argparse
from pathlib import Path

from innreg.benchmark.convergence import convergence_study
from innreg.benchmark.run import METHOD_NOT_RUN, run_benchmark, run_method
from innreg.benchmark.settings import CONVERGENCE_METHODS, DEFAULT_METHODS, RESULT_FILE, BenchmarkSettings
from innreg.cli_types import positive_int
from innreg.errors import InnregInputError


def add_benchmark_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``innreg benchmark``."""
    from innreg.baselines import METHODS

    add = parser.add_argument
    add("--train", required=True, type=Path, help="manifest CSV of the training pairs")
    add("--test", required=True, type=Path, help="manifest CSV of the test pairs (with moving_seg, fixed_seg)")
    add("--out", required=True, type=Path,
        help="output folder (results.csv, results.md, dice_bars.png, one folder per method)")
    add(
        "--methods",
        default=None,
        help=f"comma-separated methods (default: all; with --convergence: {','.join(CONVERGENCE_METHODS)}); "
        f"known: {', '.join(METHODS)}",
    )
    add("--steps", type=positive_int, default=1200, help="training steps of every learned method (default: 1200)")
    add("--device", default="auto", help="compute device: auto, cpu or cuda[:k] (default: auto)")
    add("--dim", type=int, choices=(2, 3), default=2, help="2D or 3D images (default: 2)")
    add(
        "--threads", type=positive_int, default=1, metavar="N",
        help="CPU threads of every method: torch's (innreg, ConvexAdam, the learned methods) and ITK's (ANTs, "
        "elastix, Greedy) (default: 1, the same for each, and Greedy repeatable)",
    )
    add("--config", type=Path, help="YAML base config for the learned methods (their own switches override it)")
    add("--in-process", action="store_true",
        help="run all methods in this process (peak memory is then cumulative)")
    add("--convergence", action="store_true", help="Dice against training step instead of the comparison table")
    add("--eval-every", type=positive_int, default=None,
        help="with --convergence: steps between evaluations (default: steps/20)")
    add("--convergence-pairs", type=positive_int, default=10,
        help="with --convergence: test pairs evaluated (default: 10)")
    add("--quiet", action="store_true", help="no progress bars")
    add("--one-method", action="store_true", help=argparse.SUPPRESS)  # internal: one method, this process


def run_benchmark_from_args(args: argparse.Namespace) -> Path:
    """Run what ``innreg benchmark`` was asked for; returns the written Markdown file."""
    default = CONVERGENCE_METHODS if args.convergence else DEFAULT_METHODS
    methods = tuple(m.strip() for m in args.methods.split(",") if m.strip()) if args.methods else default
    if not methods:
        raise InnregInputError("--methods: no method named")
    if args.convergence:
        md = convergence_study(
            args.train, args.test, args.out, args.steps, args.eval_every or max(1, args.steps // 20),
            methods=methods, n_pairs=args.convergence_pairs, device=args.device, dim=args.dim,
            config=args.config, progress=not args.quiet,
        )  # fmt: skip
        print(f"convergence: {md}")
        return md
    settings = BenchmarkSettings(
        train=args.train, test=args.test, out=args.out, methods=methods, steps=args.steps, device=args.device,
        dim=args.dim, config=args.config, progress=not args.quiet, isolate=not args.in_process,
        threads=args.threads,
    )  # fmt: skip
    if args.one_method:
        if len(methods) != 1:
            raise InnregInputError("--one-method: give exactly one method in --methods")
        try:
            run_method(methods[0], settings)
        except InnregInputError:  # its message is in error.txt; the benchmark's process reports it once
            raise SystemExit(METHOD_NOT_RUN) from None
        return settings.out / methods[0] / RESULT_FILE
    md = run_benchmark(settings)
    print(f"results: {md}")
    return md
