"""``innreg evaluate``: register and score every pair of a labelled manifest."""

from __future__ import annotations

import argparse
from pathlib import Path

from innreg.cli.options import DEVICE_HELP, add_mask_options, add_refine_options, load_model_from_args, manifest_with_masks

HELP = "register and score every pair of a labelled manifest"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, type=Path, help="model.pt written by innreg train")
    p.add_argument("--pairs", required=True, type=Path, help="CSV manifest with moving,fixed,moving_seg,fixed_seg")
    p.add_argument("--out", required=True, type=Path, help="folder for per_pair.csv, summary.json, summary.md, figures")
    p.add_argument("--device", default="auto", help=DEVICE_HELP)
    add_mask_options(p, per_pair=False)
    add_refine_options(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> None:
    from innreg.atomic import check_output_dir
    from innreg.evaluation import evaluate

    check_output_dir(args.out)
    model = load_model_from_args(args)
    summary = evaluate(model, manifest_with_masks(args.pairs, args), args.out, progress=not args.quiet)
    ident = summary.identity
    print(
        f"{summary.n_pairs} pairs: Dice {summary.dice_mean:.3f} (identity {ident.dice_mean:.3f}), "
        f"HD95 {summary.hd95_mean:.2f} mm (identity {ident.hd95_mean:.2f}), "
        f"non-positive Jacobians {100 * summary.neg_jacobian_fraction:.3f}%, "
        f"{summary.seconds_per_pair:.3f} s/pair"
    )
    if summary.translation_ncc is not None:
        print(
            f"translation vs moving_as_fixed: NCC {summary.translation_ncc:.3f} (untranslated "
            f"{ident.translation_ncc:.3f}), SSIM {summary.translation_ssim:.3f} (untranslated {ident.translation_ssim:.3f})"
        )
    print(f"results: {args.out / 'summary.md'}")
