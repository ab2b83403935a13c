"""``innreg apply``: warp another image or label map with a written registration."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "warp another image or label map with a registration that innreg register wrote"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--registration", required=True, type=Path, help="output folder of innreg register (one pair)")
    p.add_argument("--image", required=True, type=Path, help="image or label map (NIfTI, any grid) in moving space (fixed space with --inverse)")
    p.add_argument("--out", required=True, type=Path, help="output NIfTI; on the fixed grid (the moving grid with --inverse)")
    p.add_argument("--labels", action="store_true", help="label map: nearest-neighbour interpolation, integer output")
    p.add_argument("--inverse", action="store_true", help="map fixed-space data back onto the moving image's grid")
    p.add_argument("--device", default="cpu",
                   help="where the warp runs: cpu, cuda[:k], or auto (CUDA if available) (default: cpu: one warp, "
                   "a GPU pays off only for large 3D volumes)")


def run(args: argparse.Namespace) -> None:
    from innreg.warping import apply

    apply(args.registration, args.image, args.out, labels=args.labels, inverse=args.inverse, device=args.device)
    print(f"output: {args.out}")
