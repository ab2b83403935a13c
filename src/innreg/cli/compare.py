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
    from innreg.paired import paired_difference
    from innreg.results import read_per_pair

    a, b = read_per_pair(args.a, args.metric), read_per_pair(args.b, args.metric)
    common = [key for key in a if key in b]
    if len(common) < 2:
        raise InnregInputError(f"{args.b}: shares {len(common)} pair(s) (moving, fixed) with {args.a}; need at least 2")
    try:
        diff = paired_difference([a[k] for k in common], [b[k] for k in common])
    except ValueError as err:
        raise InnregInputError(f"{args.a}: {err}") from err
    only = len(a) + len(b) - 2 * len(common)
    print(f"{args.metric}, A - B over {diff.n} pairs: {diff.describe('+.4f')}")
    print(f"A: {args.a} (mean {sum(a[k] for k in common) / len(common):.4f}); B: {args.b} (mean {sum(b[k] for k in common) / len(common):.4f})")
    if only:
        print(f"{only} pair(s) in only one of the two left out")
