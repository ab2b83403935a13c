"""Measure what the translation adds (run by hand; the numbers of RESULTS.md's translation section).

Usage:
    python benchmarks/translation_study.py MODEL.pt TEST.csv N_PAIRS '[{}, {"translation_weight": 3.0}]' [--no-translate]
    python benchmarks/translation_study.py --stages MODEL.pt TRAIN.csv OUT_MODEL.pt '{"train": {"translator_rounds": 2}}'

The first form is ``refine_sweep.py`` (same arguments): it evaluates a model on the first ``N_PAIRS`` pairs of ``TEST.csv`` under each list entry
(overrides of the model's ``refine`` section, ``{}`` = as stored), printing Dice, HD95, folding,
seconds per pair and, when the manifest has a ``moving_as_fixed`` column (the moving subject rendered
in the fixed modality, written by the whole-head phantom), the NCC inside the head of the translated
moving image and of the raw moving image (the floor) with it, as ``innreg evaluate`` reports them. ``--no-translate`` runs the identical pipeline on the
untranslated image. The second form runs the translator stages of
:mod:`innreg.translation_training` (and the distillation of :mod:`innreg.distillation`) on a trained model and saves the result;
the JSON holds ``train`` overrides, optionally ``loss`` overrides (e.g. ``{"w_adv": 0.0}``: stages without
the adversarial term) and ``model`` overrides of the translator (e.g. ``{"squeeze": "haar"}``), which start
the stages from a fresh translator of that kind, or ``{"guide": "unet"}``, which adds a fresh guide (the
model's translator kept) for the stages to train.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch

from innreg import load_model
from innreg.data import read_manifest

import refine_sweep  # this folder (the script's own) is on sys.path


def stages(argv: list[str]) -> None:
    from innreg.distillation import distil_registration
    from innreg.batches import PairBatches
    from innreg.model_file import save_model
    from innreg.translation_training import train_translator_stages

    model_path, manifest, out_path, overrides = argv
    torch.set_num_threads(1)
    model = load_model(model_path, "cpu")
    overrides = json.loads(overrides)
    config = model.config.updated(**{k: overrides.get(k, {}) for k in ("train", "model", "refine", "loss")})
    if overrides.get("model"):
        from innreg.model import build_translator

        torch.manual_seed(config.train.seed)
        if "guide" in overrides["model"]:  # a fresh guide beside the model's translator, trained by the stages
            model.model.guide = build_translator(config.model, config.model.guide)
        else:  # another translator architecture: a fresh translator, trained by the stages
            model.model.translator = build_translator(config.model)
        model.model.config = config.model
    start = time.perf_counter()
    records = read_manifest(manifest)
    rounds = train_translator_stages(model.model, records, config, torch.device("cpu"))
    history = [row for loop in rounds for row in loop.history]
    distilled = distil_registration(model.model, PairBatches(records, config, torch.device("cpu")), config).history
    seconds = time.perf_counter() - start
    if distilled:
        print(f"{len(distilled)} distillation steps, last squared error {distilled[-1]['distil']:.3f} voxels^2")
    save_model(model.model, config, Path(out_path), {"translator_seconds": seconds})
    print(f"{len(history)} translator steps in {seconds:.0f} s, last L1 {history[-1]['l1'] if history else float('nan'):.4f}")


if __name__ == "__main__":
    if sys.argv[1] == "--stages":
        stages(sys.argv[2:])
    else:
        refine_sweep.main(sys.argv[1:])
