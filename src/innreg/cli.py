"""The ``innreg`` command line: phantom, train, register, apply, evaluate, demo, benchmark.

Bad input ends with one line ``innreg: error: <file or option>: <problem>`` and exit status 2, never a
traceback; Ctrl-C ends with status 130 after the last checkpoint is safely written.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from innreg.errors import InnregInputError

DEVICE_HELP = "compute device: auto (CUDA if available, else CPU), cpu, or cuda[:k] (default: auto)"


def _size(text: str) -> tuple[int, ...]:
    try:
        size = tuple(int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like 192x160 or 64x64x64, got {text!r}") from None
    if len(size) not in (2, 3):
        raise argparse.ArgumentTypeError(f"size needs 2 or 3 values, got {text!r}")
    return size


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _add_refine_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--no-refine", action="store_true", help="register with the network alone (skip the per-pair refinement)"
    )
    group.add_argument(
        "--refine-config", type=Path,
        help="YAML file whose refine section overrides the model's per-pair refinement settings, e.g. "
        "'refine: {smooth_sigma: 1.0, mind_dilation: 1}' for coarse (~3 mm) voxels; keys: innreg.config.RefineConfig",
    )
    parser.add_argument(
        "--no-translate", action="store_true",
        help="ablation/diagnostic: run the identical pipeline on the untranslated moving image",
    )


def _add_mask_options(parser: argparse.ArgumentParser, per_pair: bool) -> None:
    scope = "" if per_pair else " (for every pair without a mask column in the manifest)"
    parser.add_argument(
        "--fixed-mask", type=Path,
        help=f"mask of the fixed image (NIfTI, non-zero = use): the similarity ignores voxels outside it{scope}",
    )
    parser.add_argument(
        "--moving-mask", type=Path,
        help=f"mask of the moving image (NIfTI, non-zero = use), e.g. excluding a lesion{scope}",
    )


def _with_masks(records: list, args: argparse.Namespace) -> list:
    """Records with ``--fixed-mask`` / ``--moving-mask`` filled in where the manifest has no mask."""
    from dataclasses import replace

    return [
        replace(r, fixed_mask=r.fixed_mask or args.fixed_mask, moving_mask=r.moving_mask or args.moving_mask)
        for r in records
    ]


def _refine_choice(args: argparse.Namespace):
    """``load_model``'s ``refine`` argument from ``--no-refine`` / ``--refine-config``."""
    from innreg.config import refine_overrides_from_yaml

    if args.no_refine:
        return False
    return refine_overrides_from_yaml(args.refine_config) if args.refine_config else None


def build_parser() -> argparse.ArgumentParser:
    from innreg.data import PHANTOM_MODALITIES

    parser = argparse.ArgumentParser(
        prog="innreg",
        description="Unsupervised multi-modal image registration via invertible translation (INNReg). "
        "Fields are written in voxels of the fixed image, channel k along voxel axis k, as pull-back "
        "maps: warped(x) = moving(x + u(x)); ddf_itk.nii.gz holds the same map for ITK/ANTs (mm, LPS).",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("phantom", help="generate a simulated multi-modal head phantom data set with labels")
    p.add_argument("--out", required=True, type=Path, help="output folder (NIfTI files, train.csv, test.csv, contact sheet)")
    modalities = ", ".join(PHANTOM_MODALITIES)
    p.add_argument("--moving", default="t2", help=f"moving modality: {modalities} (default: t2)")
    p.add_argument("--fixed", default="t1", help=f"fixed modality: {modalities} (default: t1)")
    p.add_argument("--n", type=int, default=200, help="number of pairs, at least 2 (default: 200)")
    p.add_argument("--dim", type=int, choices=(2, 3), default=2, help="2D slices or 3D volumes (default: 2)")
    p.add_argument("--size", type=_size, default=None, help="image size, e.g. 192x160 (2D, default) or 64x64x64 (3D, default)")
    p.add_argument("--axis", default="axial", choices=("axial", "coronal", "sagittal"), help="slice orientation for 2D (default: axial)")
    p.add_argument("--test-fraction", type=float, default=0.2, help="share of pairs in test.csv (default: 0.2)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument(
        "--skull-stripped", action="store_true",
        help="the brain alone with mild acquisition effects (the original phantom) instead of a whole head",
    )
    p.add_argument("--spacing", type=float, help="voxel size in mm (default: fit the head, or brain, into --size)")
    p.add_argument(
        "--workers", type=_positive, help="processes generating pairs (default: the cores, at most 4, from 32 pairs on; else 1)"
    )

    p = sub.add_parser("train", help="train a model on a pair manifest (labels, if present, are not used)")
    p.add_argument("--pairs", required=True, type=Path, help="CSV manifest with columns moving,fixed (paths relative to the CSV)")
    p.add_argument("--out", required=True, type=Path, help="run folder: checkpoint.pt, model.pt, config.yaml, loss_curve.png")
    p.add_argument("--config", type=Path, help="YAML file with model/loss/train/refine settings (any subset)")
    p.add_argument("--steps", type=_positive, help="training steps (overrides the config; default 1200, 400 for 3D on a CPU)")
    p.add_argument(
        "--dim", type=int, choices=(2, 3),
        help="2: 2D images or random slices of 3D volumes; 3: volumes, on a CPU trained at half resolution (default 2)",
    )
    p.add_argument("--batch-size", type=_positive, help="pairs per step (default 2)")
    p.add_argument("--seed", type=int, help="random seed (default 0)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    p.add_argument("--checkpoint-every", type=_positive, help="steps between checkpoints (overrides the config; default 100)")
    _add_mask_options(p, per_pair=False)
    p.add_argument("--device", default=None, help=DEVICE_HELP)
    p.add_argument(
        "--precision", choices=("fp32", "bf16", "fp16"),
        help="training arithmetic: fp32 (default), bf16 autocast (CUDA or CPU), fp16 autocast + loss scaling (CUDA)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")

    p = sub.add_parser("register", help="register one pair (--moving/--fixed) or every pair of a manifest (--pairs)")
    p.add_argument("--model", required=True, type=Path, help="model.pt written by innreg train")
    p.add_argument("--moving", type=Path, help="moving image (NIfTI)")
    p.add_argument("--fixed", type=Path, help="fixed image (NIfTI); outputs take its geometry")
    p.add_argument("--moving-seg", type=Path, help="label map of the moving image, warped with nearest neighbour")
    p.add_argument("--pairs", type=Path, help="CSV manifest instead of --moving/--fixed; one sub-folder per pair")
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument("--device", default="auto", help=DEVICE_HELP)
    _add_mask_options(p, per_pair=True)
    _add_refine_options(p)

    p = sub.add_parser("apply", help="warp another image or label map with a registration that innreg register wrote")
    p.add_argument("--registration", required=True, type=Path, help="output folder of innreg register (one pair)")
    p.add_argument("--image", required=True, type=Path, help="image or label map (NIfTI, any grid) in moving space (fixed space with --inverse)")
    p.add_argument("--out", required=True, type=Path, help="output NIfTI; on the fixed grid (the moving grid with --inverse)")
    p.add_argument("--labels", action="store_true", help="label map: nearest-neighbour interpolation, integer output")
    p.add_argument("--inverse", action="store_true", help="map fixed-space data back onto the moving image's grid")

    p = sub.add_parser("evaluate", help="register and score every pair of a labelled manifest")
    p.add_argument("--model", required=True, type=Path, help="model.pt written by innreg train")
    p.add_argument("--pairs", required=True, type=Path, help="CSV manifest with moving,fixed,moving_seg,fixed_seg")
    p.add_argument("--out", required=True, type=Path, help="folder for per_pair.csv, summary.json, summary.md, figures")
    p.add_argument("--device", default="auto", help=DEVICE_HELP)
    _add_mask_options(p, per_pair=False)
    _add_refine_options(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar")

    p = sub.add_parser("demo", help="phantom data, a short training run, evaluation and an HTML report, in minutes")
    p.add_argument("--out", type=Path, default=Path("innreg-demo"), help="output folder (default: ./innreg-demo)")
    p.add_argument("--steps", type=_positive, default=None, help="training steps (default: sized for a ~5 minute CPU run)")
    p.add_argument("--device", default="auto", help=DEVICE_HELP)

    from innreg.benchmark import add_benchmark_arguments

    p = sub.add_parser("benchmark", help="train and evaluate several methods with one harness and tabulate them")
    add_benchmark_arguments(p)
    return parser


def _train_config(args: argparse.Namespace):
    from innreg.config import Config
    from innreg.model import resolve_device

    # Defaults sized to dim and device (3D on a CPU trains at half resolution), then the file, then options.
    config = Config.from_yaml(args.config) if args.config else Config()
    dim = args.dim or config.model.dim
    device = resolve_device(args.device or config.train.device).type
    sized = Config.sized_for(dim, device)
    config = Config.from_yaml(args.config, base=sized) if args.config else sized
    overrides = {
        "steps": args.steps, "batch_size": args.batch_size, "seed": args.seed, "device": args.device,
        "precision": args.precision, "checkpoint_every": args.checkpoint_every,
    }  # fmt: skip
    train = {k: v for k, v in overrides.items() if v is not None}
    model = {"dim": args.dim} if args.dim else {}
    return config.updated(train=train, model=model)


def cmd_phantom(args: argparse.Namespace) -> None:
    from innreg.data import generate_phantom_dataset
    from innreg.data.phantom.dataset import default_workers

    size = args.size or ((192, 160) if args.dim == 2 else (64, 64, 64))
    if len(size) != args.dim:
        raise InnregInputError(f"--size {'x'.join(map(str, size))}: needs {args.dim} values for --dim {args.dim}")
    paths = generate_phantom_dataset(
        args.out, moving=args.moving, fixed=args.fixed, n=args.n, dim=args.dim, size=size, seed=args.seed,
        test_fraction=args.test_fraction, axis=args.axis, skull_stripped=args.skull_stripped, spacing=args.spacing,
        workers=args.workers or default_workers(args.n),
    )
    for key, path in paths.items():
        print(f"{key}: {path}")


def cmd_train(args: argparse.Namespace) -> None:
    from innreg.training import train

    import os

    from innreg.data import read_manifest

    pairs = _with_masks(read_manifest(args.pairs), args) if args.fixed_mask or args.moving_mask else args.pairs
    model_path = train(pairs, args.out, _train_config(args), resume=args.resume, progress=not args.quiet)
    if os.environ.get("RANK", "0") == "0":  # under torchrun, one line from rank 0
        print(f"model: {model_path}")


def cmd_register(args: argparse.Namespace) -> None:
    from innreg.atomic import check_output_dir
    from innreg.data import PairRecord, read_manifest
    from innreg.inference import load_model, write_registration

    if (args.pairs is None) == (args.moving is None or args.fixed is None):
        raise InnregInputError("register: give either --moving and --fixed, or --pairs")
    check_output_dir(args.out)  # an unusable --out fails now, not after the registration
    model = load_model(args.model, args.device, refine=_refine_choice(args), translate=not args.no_translate)
    if args.pairs is not None:
        records = _with_masks(read_manifest(args.pairs), args)
        for i, record in enumerate(records):
            folder = args.out / f"{i:04d}_{Path(record.moving).name.split('.')[0]}"
            write_registration(model, record, folder)
            print(f"pair {i}: {folder}")
    else:
        record = PairRecord(
            moving=args.moving, fixed=args.fixed, moving_seg=args.moving_seg,
            fixed_mask=args.fixed_mask, moving_mask=args.moving_mask,
        )
        write_registration(model, record, args.out)
        print(f"outputs: {args.out}")


def cmd_apply(args: argparse.Namespace) -> None:
    from innreg.warping import apply

    apply(args.registration, args.image, args.out, labels=args.labels, inverse=args.inverse)
    print(f"output: {args.out}")


def cmd_evaluate(args: argparse.Namespace) -> None:
    from innreg.atomic import check_output_dir
    from innreg.evaluation import evaluate_pairs
    from innreg.inference import load_model

    check_output_dir(args.out)
    model = load_model(args.model, args.device, refine=_refine_choice(args), translate=not args.no_translate)
    from innreg.data import read_manifest

    pairs = _with_masks(read_manifest(args.pairs), args) if args.fixed_mask or args.moving_mask else args.pairs
    summary = evaluate_pairs(model, pairs, args.out, progress=not args.quiet)
    ident = summary["identity"]
    print(
        f"{summary['n_pairs']} pairs: Dice {summary['dice_mean']:.3f} (identity {ident['dice_mean']:.3f}), "
        f"HD95 {summary['hd95_mean']:.2f} mm (identity {ident['hd95_mean']:.2f}), "
        f"non-positive Jacobians {100 * summary['neg_jacobian_fraction']:.3f}%, "
        f"{summary['seconds_per_pair']:.3f} s/pair"
    )
    if "translation_ncc" in summary:
        print(
            f"translation vs moving_as_fixed: NCC {summary['translation_ncc']:.3f} (untranslated "
            f"{ident['translation_ncc']:.3f}), SSIM {summary['translation_ssim']:.3f} (untranslated {ident['translation_ssim']:.3f})"
        )
    print(f"results: {args.out / 'summary.md'}")


def cmd_demo(args: argparse.Namespace) -> None:
    from innreg.demo import run_demo

    report = run_demo(args.out, steps=args.steps, device=args.device)
    print(f"\nReport: {report.resolve()}")


def cmd_benchmark(args: argparse.Namespace) -> None:
    from innreg.benchmark import run_benchmark_from_args

    run_benchmark_from_args(args)


COMMANDS = {
    "phantom": cmd_phantom,
    "train": cmd_train,
    "register": cmd_register,
    "apply": cmd_apply,
    "evaluate": cmd_evaluate,
    "demo": cmd_demo,
    "benchmark": cmd_benchmark,
}


def _one_line(message: object) -> str:
    """A message on one line (library errors quoted in ours may span several)."""
    return " ".join(line.strip() for line in str(message).splitlines() if line.strip())


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``innreg`` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        COMMANDS[args.command](args)
    except InnregInputError as err:
        print(f"innreg: error: {_one_line(err)}", file=sys.stderr)
        return 2
    except OSError as err:
        if err.filename is None:  # not about a file the user named: a real failure, keep the traceback
            raise
        print(f"innreg: error: {err.filename}: {_one_line(err.strerror or err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("innreg: interrupted; progress so far is saved (use --resume to continue a training run)", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
