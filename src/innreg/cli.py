"""The ``innreg`` command line: phantom, train, register, evaluate, demo, benchmark.

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
        "maps: warped(x) = moving(x + u(x)).",
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

    p = sub.add_parser("train", help="train a model on a pair manifest (labels, if present, are not used)")
    p.add_argument("--pairs", required=True, type=Path, help="CSV manifest with columns moving,fixed (paths relative to the CSV)")
    p.add_argument("--out", required=True, type=Path, help="run folder: checkpoint.pt, model.pt, config.yaml, loss_curve.png")
    p.add_argument("--config", type=Path, help="YAML file with model/loss/train/refine settings (any subset)")
    p.add_argument("--steps", type=_positive, help="training steps (overrides the config; default 1200)")
    p.add_argument("--dim", type=int, choices=(2, 3), help="2: 2D images or random slices of 3D volumes; 3: volumes (default 2)")
    p.add_argument("--batch-size", type=_positive, help="pairs per step (default 2)")
    p.add_argument("--seed", type=int, help="random seed (default 0)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    p.add_argument("--device", default=None, help=DEVICE_HELP)
    p.add_argument("--quiet", action="store_true", help="no progress bar")

    p = sub.add_parser("register", help="register one pair (--moving/--fixed) or every pair of a manifest (--pairs)")
    p.add_argument("--model", required=True, type=Path, help="model.pt written by innreg train")
    p.add_argument("--moving", type=Path, help="moving image (NIfTI)")
    p.add_argument("--fixed", type=Path, help="fixed image (NIfTI); outputs take its geometry")
    p.add_argument("--moving-seg", type=Path, help="label map of the moving image, warped with nearest neighbour")
    p.add_argument("--pairs", type=Path, help="CSV manifest instead of --moving/--fixed; one sub-folder per pair")
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument("--device", default="auto", help=DEVICE_HELP)
    _add_refine_options(p)

    p = sub.add_parser("evaluate", help="register and score every pair of a labelled manifest")
    p.add_argument("--model", required=True, type=Path, help="model.pt written by innreg train")
    p.add_argument("--pairs", required=True, type=Path, help="CSV manifest with moving,fixed,moving_seg,fixed_seg")
    p.add_argument("--out", required=True, type=Path, help="folder for per_pair.csv, summary.json, summary.md, figures")
    p.add_argument("--device", default="auto", help=DEVICE_HELP)
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

    config = Config.from_yaml(args.config) if args.config else Config()
    overrides = {"steps": args.steps, "batch_size": args.batch_size, "seed": args.seed, "device": args.device}
    train = {k: v for k, v in overrides.items() if v is not None}
    model = {"dim": args.dim} if args.dim else {}
    return config.updated(train=train, model=model)


def cmd_phantom(args: argparse.Namespace) -> None:
    from innreg.data import generate_phantom_dataset

    size = args.size or ((192, 160) if args.dim == 2 else (64, 64, 64))
    if len(size) != args.dim:
        raise InnregInputError(f"--size {'x'.join(map(str, size))}: needs {args.dim} values for --dim {args.dim}")
    paths = generate_phantom_dataset(
        args.out, moving=args.moving, fixed=args.fixed, n=args.n, dim=args.dim, size=size, seed=args.seed,
        test_fraction=args.test_fraction, axis=args.axis, skull_stripped=args.skull_stripped, spacing=args.spacing,
    )
    for key, path in paths.items():
        print(f"{key}: {path}")


def cmd_train(args: argparse.Namespace) -> None:
    from innreg.training import train

    model_path = train(args.pairs, args.out, _train_config(args), resume=args.resume, progress=not args.quiet)
    print(f"model: {model_path}")


def cmd_register(args: argparse.Namespace) -> None:
    from innreg.data import PairRecord, read_manifest
    from innreg.inference import load_model, write_registration

    if (args.pairs is None) == (args.moving is None or args.fixed is None):
        raise InnregInputError("register: give either --moving and --fixed, or --pairs")
    model = load_model(args.model, args.device, refine=_refine_choice(args), translate=not args.no_translate)
    if args.pairs is not None:
        records = read_manifest(args.pairs)
        for i, record in enumerate(records):
            folder = args.out / f"{i:04d}_{Path(record.moving).name.split('.')[0]}"
            write_registration(model, record, folder)
            print(f"pair {i}: {folder}")
    else:
        record = PairRecord(moving=args.moving, fixed=args.fixed, moving_seg=args.moving_seg)
        write_registration(model, record, args.out)
        print(f"outputs: {args.out}")


def cmd_evaluate(args: argparse.Namespace) -> None:
    from innreg.evaluation import evaluate_pairs
    from innreg.inference import load_model

    model = load_model(args.model, args.device, refine=_refine_choice(args), translate=not args.no_translate)
    summary = evaluate_pairs(model, args.pairs, args.out, progress=not args.quiet)
    ident = summary["identity"]
    print(
        f"{summary['n_pairs']} pairs: Dice {summary['dice_mean']:.3f} (identity {ident['dice_mean']:.3f}), "
        f"HD95 {summary['hd95_mean']:.2f} mm (identity {ident['hd95_mean']:.2f}), "
        f"non-positive Jacobians {100 * summary['neg_jacobian_fraction']:.3f}%, "
        f"{summary['seconds_per_pair']:.3f} s/pair"
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
    "evaluate": cmd_evaluate,
    "demo": cmd_demo,
    "benchmark": cmd_benchmark,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``innreg`` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        COMMANDS[args.command](args)
    except InnregInputError as err:
        print(f"innreg: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("innreg: interrupted; progress so far is saved (use --resume to continue a training run)", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
