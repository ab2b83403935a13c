"""``innreg demo``: phantom data, a short training run, evaluation and an HTML report."""

from __future__ import annotations

import argparse
from pathlib import Path

from innreg.cli.options import DEVICE_HELP, add_threads_option
from innreg.cli_types import positive_int

HELP = "phantom data, a short training run, evaluation and an HTML report, in minutes"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", type=Path, default=Path("innreg-demo"), help="output folder (default: ./innreg-demo)")
    p.add_argument(
        "--steps", type=positive_int, default=None,
        help="joint training steps (default: 600; the translator and distillation stages get half as many each; "
        "about 20 minutes on one CPU core)",
    )
    p.add_argument("--device", default="auto", help=DEVICE_HELP)
    add_threads_option(p)


def run(args: argparse.Namespace) -> None:
    from innreg.demo import run_demo
    from innreg.model import resolve_device

    resolve_device(args.device)  # refused before minutes of data generation, not after
    report = run_demo(args.out, steps=args.steps, device=args.device)
    print(f"\nReport: {report.resolve()}")
