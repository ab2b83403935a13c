"""``innreg compare``: two evaluations of the same pairs, compared pair by pair."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "compare two evaluations of the same pairs (paired difference, bootstrap CI, Wilcoxon test)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("a", type=Path, help="evaluation folder (or its per_pair.csv), e.g. of the default pipeline")
    p.add_argument("b", type=Path, help="the other evaluation of the same pairs, e.g. with --no-translate")
    p.add_argument("--metric", default="dice_mean", help="a per_pair.csv column (default: dice_mean; e.g. hd95_mean, epe_mm, dice_1)")


def run(args: argparse.Namespace) -> None:
    from innreg.errors import InnregInputError
    from innreg.paired import paired_by_key
    from innreg.results import read_per_pair, read_run, run_differences

    a, b = read_per_pair(args.a, args.metric), read_per_pair(args.b, args.metric)
    try:
        diff = paired_by_key(a, b)
    except ValueError as err:  # fewer than two pairs (moving, fixed) in both with a value
        raise InnregInputError(f"{args.b}: against {args.a}: {err}") from err
    print(f"{args.metric}, A - B over {diff.n} pairs: {diff.describe('+.4f')}")
    print(f"A: {args.a} (mean {diff.mean_a:.4f}); B: {args.b} (mean {diff.mean_b:.4f})")
    differences = run_differences(read_run(args.a), read_run(args.b))
    if differences:  # what the evaluations' summary.json say differed between the two runs
        print("runs differ in: " + "; ".join(differences))
    left_out = len(a) + len(b) - 2 * diff.n
    if left_out:
        print(f"{left_out} row(s) left out: in only one of the two, or without a value")
