"""``innreg info``: what a model file or a NIfTI image is, as innreg reads it."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

HELP = "describe model files (networks, training, refinement) and NIfTI images (grid, orientation, intensities)"

# Lists read as sizes ("224 x 192"); other lists as ranges or sequences ("0.0, 1.2").
_SIZES = {"disk_shape", "shape", "spacing_mm"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("files", nargs="+", type=Path, help="model.pt files and NIfTI images (.nii, .nii.gz)")
    p.add_argument("--json", action="store_true", help="one JSON object per file, keyed by its path")


def run(args: argparse.Namespace) -> None:
    from innreg.describe import describe_file

    # All files are read before anything is printed: a bad file gives its one error line alone.
    described = [describe_file(path) for path in args.files]
    if args.json:
        print(json.dumps({facts["file"]: facts for facts in described}, indent=2))
        return
    for facts in described:
        print(facts["file"])
        for key, value in facts.items():
            if key != "file":
                print(f"  {key}: {_text(key, value)}")


def _text(key: str, value: object) -> str:
    """One value on one line: sizes as ``a x b``, mappings as ``k v, ...``, nothing as ``-``."""
    if value is None:
        return "-"
    if isinstance(value, list):
        return (" x " if key in _SIZES else ", ").join(f"{v:g}" if isinstance(v, float) else str(v) for v in value)
    if isinstance(value, dict):
        return ", ".join(f"{k} {_text(k, v)}" for k, v in value.items())
    return str(value)
