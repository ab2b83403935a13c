"""``innreg train``: train a model on a pair manifest."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from innreg.cli.options import DEVICE_HELP, add_mask_options, add_threads_option, is_main_rank, manifest_with_masks
from innreg.cli_types import non_negative_int, positive_int

HELP = "train a model on a pair manifest (labels, if present, are not used)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    # Every setting defaults to None: unset options leave the config's value (innreg.config) alone.
    p.add_argument("--pairs", required=True, type=Path, help="CSV manifest with columns moving,fixed (paths relative to the CSV)")
    p.add_argument("--out", required=True, type=Path, help="run folder: checkpoint.pt, model.pt, config.yaml, loss_curve.png")
    p.add_argument("--config", type=Path, help="YAML file with model/loss/train/refine settings (any subset)")
    p.add_argument("--steps", type=positive_int, help="training steps (overrides the config; default 1200, 400 for 3D on a CPU)")
    p.add_argument(
        "--dim", type=int, choices=(2, 3),
        help="2: 2D images or random slices of 3D volumes; 3: volumes, on a CPU trained at half resolution (default 2)",
    )
    p.add_argument("--batch-size", type=positive_int, help="pairs per step (default 2)")
    p.add_argument("--seed", type=non_negative_int, help="random seed (default 0)")
    p.add_argument(
        "--resume", action="store_true",
        help="continue the run in --out from its last checkpoint, with its own settings (--steps raises its steps; "
        "--device and --data-workers are this machine's)",
    )
    p.add_argument("--checkpoint-every", type=positive_int, help="steps between checkpoints (overrides the config; default 100)")
    p.add_argument(
        "--data-workers", type=non_negative_int,
        help="processes preparing the next batches while a step runs; the same batches (default 4 on a GPU, 0 on a CPU)",
    )
    add_mask_options(p, per_pair=False)
    p.add_argument("--device", default=None, help=DEVICE_HELP)
    add_threads_option(p)
    p.add_argument(
        "--precision", choices=("fp32", "bf16", "fp16"),
        help="training arithmetic: fp32 (default), bf16 autocast (CUDA or CPU), fp16 autocast + loss scaling (CUDA)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def train_config(args: argparse.Namespace) -> Any:
    """The run's :class:`~innreg.config.Config`: defaults sized to dim and device (3D on a CPU trains
    at half resolution), then the ``--config`` file, then the options."""
    from innreg.config import Config
    from innreg.model import resolve_device

    config = Config.from_yaml(args.config) if args.config else Config()
    dim = args.dim or config.model.dim
    where = "--device" if args.device else f"{args.config}: train.device" if args.config else "train.device"
    device = resolve_device(args.device or config.train.device, where).type
    sized = Config.sized_for(dim, device)
    config = Config.from_yaml(args.config, base=sized) if args.config else sized
    overrides = {
        "steps": args.steps, "batch_size": args.batch_size, "seed": args.seed, "device": args.device,
        "precision": args.precision, "checkpoint_every": args.checkpoint_every, "data_workers": args.data_workers,
    }  # fmt: skip
    train = {k: v for k, v in overrides.items() if v is not None}
    model = {"dim": args.dim} if args.dim else {}
    return config.updated(train=train, model=model)


def run(args: argparse.Namespace) -> None:
    from innreg.errors import InnregInputError
    from innreg.training import train

    if not args.resume and (args.out / "checkpoint.pt").exists():  # a new run would discard it
        raise InnregInputError(
            f"{args.out}: holds a training run (checkpoint.pt); continue it with --resume or choose another --out"
        )
    pairs = manifest_with_masks(args.pairs, args)
    config = train_config(args)
    if args.resume and args.steps is None and (args.out / "checkpoint.pt").exists():
        # A resumed run raises its steps to the config's (training.train); without --steps it ends where
        # it was set to end, not at the default of another size (a 3D CPU run resumed without --dim 3).
        config = config.updated(train={"steps": 1})
    model_path = train(pairs, args.out, config, resume=args.resume, progress=not args.quiet)
    if is_main_rank():
        print(f"model: {model_path}")
