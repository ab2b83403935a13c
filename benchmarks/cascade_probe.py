"""Does a second U-Net pass (``model.cascades: 2``) help the network alone? (run by hand)

Usage:
    python benchmarks/cascade_probe.py MODEL.pt TRAIN.csv TEST.csv PASSES STEPS OUT.pt

``MODEL.pt`` is a trained model before its distillation (a run folder's joint and translator-stage
checkpoints resumed with ``train.distil_steps: 0``). The model is rebuilt with ``PASSES`` U-Net passes
(:class:`innreg.nn.registration.RegistrationNet`), its weights loaded and every new pass's U-Net a copy of
the first pass's (its field head tiny, so the cascade starts as the single pass), then distilled for
``STEPS`` steps (:func:`innreg.distillation.distil_registration`, the model's own config otherwise) and
scored on ``TEST.csv`` by ``innreg evaluate``'s code, network alone and full pipeline, before and after.
``PASSES`` 1 reproduces the default training's distillation: the control.
"""

from __future__ import annotations

import dataclasses
import sys
import tempfile
import time
from pathlib import Path

import torch

from innreg import load_model
from innreg.batches import PairBatches
from innreg.data import read_manifest
from innreg.distillation import distil_registration
from innreg.evaluation import evaluate
from innreg.inference import RegistrationModel
from innreg.model import INNReg
from innreg.model_file import save_model


def with_cascade(model: INNReg, passes: int) -> INNReg:
    """``model`` rebuilt with ``passes`` U-Net passes, each new pass's U-Net copied from the first's."""
    cascade = INNReg(dataclasses.replace(model.config, cascades=passes))
    missing, unexpected = cascade.load_state_dict(model.state_dict(), strict=False)
    if unexpected or not all(k.startswith("registration.cascade.") for k in missing):
        raise RuntimeError(f"unexpected weights: missing {missing}, unexpected {unexpected}")
    for unet, _ in cascade.registration.cascade:
        unet.load_state_dict(model.registration.unet.state_dict())
    return cascade


def score(model: RegistrationModel, records, label: str) -> None:
    for enabled in (False, True):
        model.config = model.config.updated(refine={"enabled": enabled})
        with tempfile.TemporaryDirectory() as out:
            s = evaluate(model, records, out, overview_pairs=0, progress=False)
        print(f"{label}, {'full pipeline' if enabled else 'network alone'}: Dice {s.dice_mean:.4f}, "
              f"HD95 {s.hd95_mean:.2f} mm, Jac<=0 {100 * s.neg_jacobian_fraction:.3f}%", flush=True)


def main(argv: list[str]) -> None:
    model_path, train_csv, test_csv, passes, steps, out_path = argv
    passes, steps = int(passes), int(steps)
    torch.set_num_threads(1)
    loaded = load_model(model_path, "cpu")
    test = read_manifest(test_csv)
    config = loaded.config.updated(model={"cascades": passes})
    network = with_cascade(loaded.model, passes) if passes > 1 else loaded.model
    model = RegistrationModel(network, config, torch.device("cpu"))
    score(model, test, f"{passes} pass(es), before")
    config = config.updated(train={"distil_steps": steps, "steps": max(steps, config.train.steps)})
    start = time.perf_counter()
    history = distil_registration(network, PairBatches(read_manifest(train_csv), config, torch.device("cpu")), config).history
    tail = history[-100:]
    print(f"{len(history)} steps in {time.perf_counter() - start:.0f} s; squared distance to the targets, "
          f"last 100 steps: {sum(h['distil'] for h in tail) / max(len(tail), 1):.1f} voxels^2", flush=True)
    score(RegistrationModel(network, config, torch.device("cpu")), test, f"{passes} pass(es), after {steps} steps")
    save_model(network, config, Path(out_path), {"distil_steps": steps})


if __name__ == "__main__":
    main(sys.argv[1:])
