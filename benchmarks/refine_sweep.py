"""Evaluate one trained model under several refinement settings (run by hand).

Usage:
    python benchmarks/refine_sweep.py MODEL.pt TEST.csv N_PAIRS '[{}, {"smooth_sigma": 1.0}]'

Each entry of the list overrides keys of the model's ``refine`` section (see ``innreg.config.RefineConfig``);
``{}`` is the shipped default. For each, the first ``N_PAIRS`` pairs of ``TEST.csv`` are registered and
scored by ``innreg.evaluation.evaluate_pairs`` (the code behind ``innreg evaluate``), and one line with
mean Dice, HD95, folding and seconds per pair is printed. The sweeps quoted in ``RESULTS.md`` were run
this way, one process at a time on an otherwise idle machine (timings are wall time, 2 threads).
"""

from __future__ import annotations

import ast
import sys
import tempfile

import torch

from innreg import load_model
from innreg.data import read_manifest
from innreg.evaluation import evaluate_pairs


def main(argv: list[str]) -> None:
    model_path, manifest, n_pairs, settings = argv
    torch.set_num_threads(2)
    model = load_model(model_path, "cpu")
    records = read_manifest(manifest)[: int(n_pairs)]
    shipped = model.config
    for overrides in ast.literal_eval(settings):
        model.config = shipped.updated(refine=overrides)
        with tempfile.TemporaryDirectory() as out:
            summary = evaluate_pairs(model, records, out, overview_pairs=0, progress=False)
        print(
            f"{overrides}: Dice {summary['dice_mean']:.4f}, HD95 {summary['hd95_mean']:.2f} mm, "
            f"Jac<=0 {100 * summary['neg_jacobian_fraction']:.3f}%, {1000 * summary['seconds_per_pair']:.0f} ms/pair",
            flush=True,
        )


if __name__ == "__main__":
    main(sys.argv[1:])
