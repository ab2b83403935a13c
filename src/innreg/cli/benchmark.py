"""``innreg benchmark``: train and evaluate several methods with one harness (options: :mod:`innreg.benchmark.args`)."""

from __future__ import annotations

import argparse

HELP = "train and evaluate several methods with one harness and tabulate them"


def add_arguments(p: argparse.ArgumentParser) -> None:
    from innreg.benchmark.args import add_benchmark_arguments  # light: method names, no torch

    add_benchmark_arguments(p)


def run(args: argparse.Namespace) -> None:
    from innreg.benchmark.args import run_benchmark_from_args

    run_benchmark_from_args(args)
