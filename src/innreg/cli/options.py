"""Options and helpers shared by several ``innreg`` commands (light: no torch at import)."""

from __future__ import annotations

import argparse
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

from innreg.cli_types import positive_int

DEVICE_HELP = "compute device: auto (CUDA if available, else CPU), cpu, or cuda[:k] (default: auto)"
THREADS_HELP = "CPU threads of torch's operations (default: every core)"


def add_threads_option(parser: argparse.ArgumentParser, default: int | None = None, help: str = THREADS_HELP) -> None:
    """``--threads N``: the command's CPU threads, set by :func:`innreg.cli.main` before the command runs
    (:func:`innreg.threads.set_cpu_threads`); ``None`` leaves torch's and ITK's defaults (every core)."""
    parser.add_argument("--threads", type=positive_int, default=default, metavar="N", help=help)


def is_main_rank() -> bool:
    """Whether this process speaks for the run: always, except on the ranks other than 0 of a torchrun launch
    (which sets ``RANK``), whose lines would repeat rank 0's."""
    return os.environ.get("RANK", "0") == "0"


def image_size(text: str) -> tuple[int, ...]:
    """``argparse`` type: an image size such as ``192x160`` or ``64x64x64``."""
    try:
        size = tuple(int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like 192x160 or 64x64x64, got {text!r}") from None
    if len(size) not in (2, 3):
        raise argparse.ArgumentTypeError(f"size needs 2 or 3 values, got {text!r}")
    return size


def add_refine_options(parser: argparse.ArgumentParser) -> None:
    """``--no-refine`` / ``--refine-config`` / ``--no-translate`` of the commands that register with a model."""
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


def add_mask_options(parser: argparse.ArgumentParser, per_pair: bool) -> None:
    """``--fixed-mask`` / ``--moving-mask``; for manifests (``per_pair=False``) a fallback per pair."""
    scope = "" if per_pair else " (for every pair without a mask column in the manifest)"
    parser.add_argument(
        "--fixed-mask", type=Path,
        help=f"mask of the fixed image (NIfTI, non-zero = use): the similarity ignores voxels outside it{scope}",
    )
    parser.add_argument(
        "--moving-mask", type=Path,
        help=f"mask of the moving image (NIfTI, non-zero = use), e.g. excluding a lesion{scope}",
    )


def manifest_with_masks(pairs: Path, args: argparse.Namespace) -> Any:
    """The manifest path, or its records with ``--fixed-mask`` / ``--moving-mask`` filled in where
    a record has no mask of its own."""
    if not (args.fixed_mask or args.moving_mask):
        return pairs
    from innreg.data import read_manifest

    return records_with_masks(read_manifest(pairs), args)


def records_with_masks(records: list, args: argparse.Namespace) -> list:
    """Records with ``--fixed-mask`` / ``--moving-mask`` filled in where the manifest has no mask."""
    return [
        replace(r, fixed_mask=r.fixed_mask or args.fixed_mask, moving_mask=r.moving_mask or args.moving_mask)
        for r in records
    ]


def load_model_from_args(args: argparse.Namespace) -> Any:
    """The :class:`~innreg.inference.RegistrationModel` of ``--model``, ``--device`` and the refine options."""
    from innreg.config import refine_overrides_from_yaml
    from innreg.inference import load_model

    refine: Any = False if args.no_refine else (refine_overrides_from_yaml(args.refine_config) if args.refine_config else None)
    return load_model(args.model, args.device, refine=refine, translate=not args.no_translate)
