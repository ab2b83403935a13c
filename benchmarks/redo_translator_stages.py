"""Redo a finished run's translator stages with changed settings, keeping its networks (run by hand).

Usage:
    python benchmarks/redo_translator_stages.py RUN_DIR OUT_DIR TRAIN.csv '{"translator_inverse_l1": 0.0}'

Starts from ``RUN_DIR/checkpoint.pt`` (the end of the joint training), sets the JSON's keys in the
``train`` section of its config and runs ``innreg train --resume`` in ``OUT_DIR`` without the
distillation, so only the translator stages run again (the same alignment, crops and seeds as the
original run). Then writes ``OUT_DIR/model.pt``: ``RUN_DIR/model.pt`` (its distilled registration
network and its config) with the new translator, ready for ``innreg evaluate`` and
``benchmarks/translation_fidelity.py`` (RESULTS.md section 8). A translator stage's setting is all that
may change; the run's config is not rewritten, so ``OUT_DIR/model.pt`` records the original settings.
Unlike ``translation_study.py --stages`` (stages run on a finished model, aligned by its distilled
network), this repeats the run's own stages exactly: the same settings give the run's translator back.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import torch

from innreg.cli import main as innreg_main


def resume_joint_checkpoint(run_dir: Path, out_dir: Path, pairs: str, train_overrides: dict) -> Path:
    """``innreg train --resume`` in ``out_dir`` from ``run_dir/checkpoint.pt`` (the end of the joint
    steps) with ``train_overrides`` set in its stored config: what follows the joint steps runs again."""
    out_dir.mkdir(parents=True, exist_ok=True)
    joint = torch.load(run_dir / "checkpoint.pt", map_location="cpu", weights_only=False)
    joint["extra"]["config"]["train"].update(train_overrides)
    torch.save(joint, out_dir / "checkpoint.pt")
    shutil.copy(run_dir / "config.yaml", out_dir / "config.yaml")
    if innreg_main(["train", "--pairs", pairs, "--out", str(out_dir), "--resume", "--quiet"]) != 0:
        raise SystemExit("innreg train --resume failed")
    return out_dir / "model.pt"


def redo(run_dir: Path, out_dir: Path, pairs: str, train_overrides: dict) -> Path:
    resume_joint_checkpoint(run_dir, out_dir, pairs, {**train_overrides, "distil_steps": 0})
    model = torch.load(run_dir / "model.pt", map_location="cpu", weights_only=False)
    redone = torch.load(out_dir / "model.pt", map_location="cpu", weights_only=False)["state_dict"]
    for key in model["state_dict"]:
        if key.startswith("translator."):
            model["state_dict"][key] = redone[key]
    model["info"]["redone_translator_stages"] = train_overrides
    torch.save(model, out_dir / "model.pt")
    return out_dir / "model.pt"


if __name__ == "__main__":
    if len(sys.argv) != 5:
        raise SystemExit(__doc__)
    print(redo(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], json.loads(sys.argv[4])))
