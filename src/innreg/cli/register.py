"""``innreg register``: register one pair or every pair of a manifest with a trained model."""

from __future__ import annotations

import argparse
from pathlib import Path

from innreg.cli.options import (
    DEVICE_HELP, add_mask_options, add_refine_options, add_threads_option, load_model_from_args, records_with_masks,
)
from innreg.errors import InnregInputError, raise_if_stopped

HELP = "register one pair (--moving/--fixed) or every pair of a manifest (--pairs)"
# With --pairs: which sub-folder holds which pair, for this run (a used --out may hold other runs' folders).
INDEX_FILE = "registrations.csv"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, type=Path, help="model.pt written by innreg train")
    p.add_argument("--moving", type=Path, help="moving image (NIfTI)")
    p.add_argument("--fixed", type=Path, help="fixed image (NIfTI); outputs take its geometry")
    p.add_argument("--moving-seg", type=Path, help="label map of the moving image, warped with nearest neighbour")
    p.add_argument(
        "--pairs", type=Path,
        help=f"CSV manifest instead of --moving/--fixed; one sub-folder per pair, listed in {INDEX_FILE}",
    )
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument("--device", default="auto", help=DEVICE_HELP)
    add_threads_option(p)
    add_mask_options(p, per_pair=True)
    add_refine_options(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> None:
    from innreg.atomic import check_folder_spares_inputs, check_output_dir, staged_dir
    from innreg.data import PairRecord, read_manifest
    from innreg.warping import REGISTRATION_FILES

    if (args.pairs is None) == (args.moving is None or args.fixed is None):
        raise InnregInputError("register: give either --moving and --fixed, or --pairs")
    if args.pairs is not None and args.moving_seg is not None:
        raise InnregInputError("--moving-seg: for one pair (--moving/--fixed); with --pairs, the manifest's moving_seg column")
    check_output_dir(args.out)  # an unusable --out fails now, not after the registration
    inputs = [("--model", args.model), ("--pairs", args.pairs), ("--fixed-mask", args.fixed_mask),
              ("--moving-mask", args.moving_mask)]  # fmt: skip
    if args.pairs is not None:
        records = records_with_masks(read_manifest(args.pairs), args)
        names = [f"{i:04d}_{Path(record.moving).name.split('.')[0]}" for i, record in enumerate(records)]
        # A pair's folder is replaced whole: no input may lie in one.
        inputs += [(f"pair {i} {k}", v) for i, r in enumerate(records) for k, v in r.files()]
        check_folder_spares_inputs(args.out, [*names, INDEX_FILE], inputs)
        model = load_model_from_args(args)
        with staged_dir(args.out) as staging:  # a broken later pair leaves no earlier pair's outputs
            results = _register_all(model, records, [staging / name for name in names], args.quiet)
            _write_index(staging / INDEX_FILE, names, records, results)
        for i, name in enumerate(names):
            print(f"pair {i}: {args.out / name}")
        print(f"index: {args.out / INDEX_FILE}")
    else:
        record = PairRecord(
            moving=args.moving, fixed=args.fixed, moving_seg=args.moving_seg,
            fixed_mask=args.fixed_mask, moving_mask=args.moving_mask,
        )
        inputs += [("--moving", args.moving), ("--fixed", args.fixed), ("--moving-seg", args.moving_seg)]
        check_folder_spares_inputs(args.out, REGISTRATION_FILES, inputs)
        model = load_model_from_args(args)
        # Staged (innreg.inference.write_registration): an interrupted run leaves --out as it was.
        _register_all(model, [record], [args.out], args.quiet)
        print(f"outputs: {args.out}")


def _write_index(path: Path, names: list[str], records: list, results: list) -> None:
    """The ``--pairs`` run's index: one row per pair, its folder (relative to --out), its input files as
    the manifest resolved them, and its registration's seconds."""
    from innreg.reports.tables import csv_text

    rows = [
        {"folder": name, "moving": record.moving, "fixed": record.fixed, "moving_seg": record.moving_seg,
         "seconds": f"{result.seconds:.3f}"}
        for name, record, result in zip(names, records, results)
    ]  # fmt: skip
    path.write_text(csv_text(rows, ["folder", "moving", "fixed", "moving_seg", "seconds"]))


def _register_all(model, records: list, out_dirs: list[Path], quiet: bool) -> list:
    """Register and write each record into its folder, under one progress bar over the pairs whose
    postfix names the phase of the pair in progress (a 3D pair of 1 mm voxels takes a minute or more);
    returns the registration results."""
    from tqdm.auto import tqdm

    from innreg.inference import write_registration

    # Shown from the first second on: input that fails at once gets its one error line alone.
    results = []
    with tqdm(total=len(records), desc="register", unit="pair", disable=quiet, dynamic_ncols=True, delay=1.0) as bar:
        for record, out_dir in zip(records, out_dirs):
            raise_if_stopped()
            results.append(write_registration(model, record, out_dir, None if quiet else bar.set_postfix_str))
            bar.update()
    return results
