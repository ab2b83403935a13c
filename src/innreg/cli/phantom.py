"""``innreg phantom``: a simulated multi-modal head phantom data set with labels."""

from __future__ import annotations

import argparse
from pathlib import Path

from innreg.cli.options import image_size
from innreg.cli_types import non_negative_float, open_fraction, pair_count, positive_float, positive_int, unit_fraction
from innreg.errors import InnregInputError

HELP = "generate a simulated multi-modal head phantom data set with labels"


def add_arguments(p: argparse.ArgumentParser) -> None:
    # The defaults are generate_phantom_dataset's (tests/cli/test_parser.py holds them equal).
    from innreg.data import PHANTOM_MODALITIES  # names only: innreg.data imports its modules lazily

    p.add_argument("--out", required=True, type=Path, help="output folder (NIfTI files, train.csv, test.csv, contact sheet)")
    modalities = ", ".join(PHANTOM_MODALITIES)
    p.add_argument("--moving", default="t2", type=str.lower, choices=PHANTOM_MODALITIES, metavar="MODALITY",
                   help=f"moving modality: {modalities} (default: t2)")
    p.add_argument("--fixed", default="t1", type=str.lower, choices=PHANTOM_MODALITIES, metavar="MODALITY",
                   help=f"fixed modality: {modalities} (default: t1)")
    p.add_argument("--n", type=pair_count, default=200, help="number of pairs, at least 2 (default: 200)")
    p.add_argument("--dim", type=int, choices=(2, 3), default=2, help="2D slices or 3D volumes (default: 2)")
    p.add_argument("--size", type=image_size, default=None, help="image size, e.g. 192x160 (2D, default) or 64x64x64 (3D, default)")
    p.add_argument("--axis", default="axial", choices=("axial", "coronal", "sagittal"), help="slice orientation for 2D (default: axial)")
    p.add_argument("--test-fraction", type=open_fraction, default=0.2, help="share of pairs in test.csv (default: 0.2)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument(
        "--skull-stripped", action="store_true",
        help="the brain alone with mild acquisition effects (the original phantom) instead of a whole head",
    )
    p.add_argument("--spacing", type=positive_float, help="voxel size in mm (default: fit the head, or brain, into --size)")
    # The pair's misalignment (innreg.data.deformations.DeformationParams, and MotionParams for whole heads;
    # tests/cli/test_parser.py holds the defaults equal).
    misalignment = p.add_argument_group("misalignment of each pair (uniform draws)")
    misalignment.add_argument("--rotation", type=non_negative_float, default=10.0, metavar="DEG",
                              help="affine rotation in [-DEG, DEG] degrees, about each axis in 3D (default: 10)")
    misalignment.add_argument("--scale", type=unit_fraction, default=0.1, metavar="S",
                              help="scaling factor in [1 - S, 1 + S] per axis (default: 0.1)")
    misalignment.add_argument("--shear", type=non_negative_float, default=0.05, metavar="H",
                              help="shear coefficients in [-H, H] (default: 0.05)")
    misalignment.add_argument("--translation", type=non_negative_float, default=0.05, metavar="T",
                              help="shift in [-T, T] times each axis' length (default: 0.05)")
    misalignment.add_argument("--elastic", type=non_negative_float, default=3.0, metavar="VOX",
                              help="RMS of the elastic velocity in voxels of a 192-voxel grid, scaled with the grid; 0: none (default: 3)")
    misalignment.add_argument("--head-rotation", type=non_negative_float, default=4.0, metavar="DEG",
                              help="whole heads also move rigidly between the two scans: rotation in [-DEG, DEG] "
                              "degrees, about each axis in 3D (default: 4)")
    misalignment.add_argument("--head-shift", type=non_negative_float, default=4.0, metavar="MM",
                              help="whole heads' rigid shift between the two scans in [-MM, MM] mm along each axis "
                              "(default: 4)")
    p.add_argument(
        "--workers", type=positive_int, help="processes generating pairs (default: the cores, at most 4, from 32 pairs on; else 1)"
    )


def run(args: argparse.Namespace) -> None:
    from innreg.data import generate_phantom_dataset
    from innreg.data.deformations import DeformationParams
    from innreg.data.phantom import MotionParams
    from innreg.data.phantom.dataset import default_workers

    size = args.size or ((192, 160) if args.dim == 2 else (64, 64, 64))
    if len(size) != args.dim:
        raise InnregInputError(f"--size {'x'.join(map(str, size))}: needs {args.dim} values for --dim {args.dim}")
    paths = generate_phantom_dataset(
        args.out, moving=args.moving, fixed=args.fixed, n=args.n, dim=args.dim, size=size, seed=args.seed,
        test_fraction=args.test_fraction, axis=args.axis, skull_stripped=args.skull_stripped, spacing=args.spacing,
        workers=args.workers or default_workers(args.n),
        deformation=DeformationParams(
            rotation_deg=args.rotation, scale=(1 - args.scale, 1 + args.scale), shear=args.shear,
            translation=args.translation, elastic_magnitude_vox=args.elastic,
        ),
        motion=MotionParams(rotation_deg=args.head_rotation, translation_mm=args.head_shift),
    )
    for key, path in paths.items():
        print(f"{key}: {path}")
