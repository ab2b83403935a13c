"""Evaluate one trained model under several refinement settings (run by hand).

Usage:
    python benchmarks/refine_sweep.py MODEL.pt TEST.csv N_PAIRS '[{}, {"smooth_sigma": 1.0}]' [--no-translate]

Each entry of the list overrides keys of the model's ``refine`` section (see ``innreg.config.RefineConfig``);
``{}`` is the shipped default. For each, the first ``N_PAIRS`` pairs of ``TEST.csv`` are registered and
scored by ``innreg.evaluation.evaluate`` (the code behind ``innreg evaluate``), and one line with mean
Dice, HD95, folding, seconds per pair and, when the manifest has ``moving_as_fixed``, the NCC of the
translated and of the raw moving image with it is printed. ``--no-translate`` runs the identical
pipeline on the untranslated moving image. The sweeps quoted in ``RESULTS.md`` were run this way, one
process at a time (timings are wall time).
"""

from __future__ import annotations

import ast
import sys
import tempfile

import torch

from innreg import load_model
from innreg.data import PairRecord, read_manifest
from innreg.evaluation import evaluate
from innreg.inference import RegistrationModel


def model_and_pairs(argv: list[str], threads: int) -> tuple[RegistrationModel, list[PairRecord], bool, str]:
    """``MODEL.pt TEST.csv N_PAIRS LAST [--no-translate]`` read: the model (translating unless
    ``--no-translate``), the first ``N_PAIRS`` pairs, whether ``--no-translate`` was given, and ``LAST``."""
    no_translate = "--no-translate" in argv
    model_path, manifest, n_pairs, last = [a for a in argv if a != "--no-translate"]
    torch.set_num_threads(threads)
    model = load_model(model_path, "cpu", translate=not no_translate)
    return model, read_manifest(manifest)[: int(n_pairs)], no_translate, last


def main(argv: list[str]) -> None:
    model, records, no_translate, settings = model_and_pairs(argv, threads=2)
    shipped = model.config
    for overrides in ast.literal_eval(settings):
        model.config = shipped.updated(refine=overrides)
        with tempfile.TemporaryDirectory() as out:
            s = evaluate(model, records, out, overview_pairs=0, progress=False)
        ncc_text = (
            f", NCC translated {s.translation_ncc:.3f} (raw {s.identity.translation_ncc:.3f})"
            if s.translation_ncc is not None else ""
        )
        print(
            f"{'no-translate ' if no_translate else ''}{overrides}: Dice {s.dice_mean:.4f} "
            f"(identity {s.identity.dice_mean:.4f}), HD95 {s.hd95_mean:.2f} mm, "
            f"Jac<=0 {100 * s.neg_jacobian_fraction:.3f}%, {1000 * s.seconds_per_pair:.0f} ms/pair{ncc_text}",
            flush=True,
        )


if __name__ == "__main__":
    main(sys.argv[1:])
