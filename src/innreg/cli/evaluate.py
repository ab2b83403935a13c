"""``innreg evaluate``: register and score every pair of a labelled manifest."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from innreg.cli.options import (
    DEVICE_HELP, add_mask_options, add_refine_options, add_threads_option, load_model_from_args, manifest_with_masks,
)

if TYPE_CHECKING:
    from innreg.results import EvaluationSummary

HELP = "register and score every pair of a labelled manifest"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, type=Path, help="model.pt written by innreg train")
    p.add_argument("--pairs", required=True, type=Path, help="CSV manifest with moving,fixed,moving_seg,fixed_seg")
    p.add_argument("--out", required=True, type=Path, help="folder for per_pair.csv, summary.json, summary.md, figures")
    p.add_argument("--device", default="auto", help=DEVICE_HELP)
    add_threads_option(p)
    add_mask_options(p, per_pair=False)
    add_refine_options(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> None:
    from innreg.atomic import check_output_dir
    from innreg.evaluation import evaluate

    check_output_dir(args.out)
    model = load_model_from_args(args)
    summary = evaluate(model, manifest_with_masks(args.pairs, args), args.out, progress=not args.quiet)
    ident, run = summary.identity, model.describe()
    threads = run["cpu_threads"]
    print(
        f"{summary.n_pairs} pair{'' if summary.n_pairs == 1 else 's'}: "
        f"Dice {summary.dice_mean:.3f} (identity {ident.dice_mean:.3f}), "
        f"HD95 {summary.hd95_mean:.2f} mm (identity {ident.hd95_mean:.2f}), "
        f"non-positive Jacobians {100 * summary.neg_jacobian_fraction:.3f}%, "
        f"{summary.seconds_per_pair:.3f} s/pair ({run['device']}, {threads} CPU thread{'' if threads == 1 else 's'})"
    )
    if summary.phase_seconds_per_pair:
        phases = summary.phase_seconds_per_pair.items()
        print("seconds a pair by phase: " + ", ".join(f"{name} {seconds:.3f}" for name, seconds in phases))
    if summary.translation_ncc is not None:
        print(translation_line(summary, model.config.model.input_factor))
    print(f"results: {args.out / 'summary.md'}")


def translation_line(summary: EvaluationSummary, input_factor: int) -> str:
    """The translation fidelity's line; a model whose networks work on a coarser grid (3D on a CPU)
    translates there, while the untranslated floor keeps full resolution, which the line says."""
    ident = summary.identity
    line = (
        f"translation vs moving_as_fixed: NCC {summary.translation_ncc:.3f} (untranslated {ident.translation_ncc:.3f}), "
        f"SSIM {summary.translation_ssim:.3f} (untranslated {ident.translation_ssim:.3f})"
    )
    if input_factor > 1:
        line += f"; translated at 1/{input_factor} resolution, the untranslated floor at full resolution"
    return line
