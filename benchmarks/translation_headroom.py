"""How much a better translation could add to today's pipeline: the model's translation against a perfect one.

Usage:
    python benchmarks/translation_headroom.py MODEL.pt TEST.csv N_PAIRS '[{}, {"translation_weight": 10.0}]'

For the first ``N_PAIRS`` pairs of a phantom manifest (it needs the ``moving_as_fixed`` column: the moving
subject rendered in the fixed modality, a perfect translation), each refinement setting of the list (keys of
``innreg.config.RefineConfig`` over the model's; ``{}`` is the shipped default) runs three ways through
``RegistrationModel.register``, the code behind ``innreg register`` and ``innreg evaluate``:

- ``raw``: ``--no-translate`` (the moving image in the translation's place, the fixed image in the inverse's);
- ``translator``: the model's translation and inverse (the default);
- ``truth``: the translated channel (and the guide's, for a model with one) replaced by the pair's
  ``moving_as_fixed``, normalised as ``register`` normalises the fixed image; the inverse channel stays the
  model's (the phantom writes no perfect inverse).

Prints the mean Dice over the fixed labels (as ``innreg evaluate`` scores it) per source and setting, one
thread. ``raw`` and ``translator`` with ``{}`` reproduce ``innreg evaluate`` with and without
``--no-translate``.
"""

from __future__ import annotations

import ast
import sys

import numpy as np
import torch
from torch import Tensor, nn

from innreg import load_model
from innreg.core.filters import resize_linear
from innreg.data import load_image, load_pair, normalize_intensity, read_manifest, voxel_spacing
from innreg.evaluation import overlap_metrics


class PerfectTranslation(nn.Module):
    """Stands in for a model's translator: ``forward`` gives :attr:`truth` (``(1, 1, *S)``, set per pair)
    at the size it is asked for; ``inverse`` stays the translator's."""

    def __init__(self, translator: nn.Module) -> None:
        super().__init__()
        self.translator = translator
        self.truth: Tensor | None = None

    def forward(self, x: Tensor) -> Tensor:
        return resize_linear(self.truth, tuple(x.shape[2:]))

    def inverse(self, y: Tensor) -> Tensor:
        return self.translator.inverse(y)


def main(model_path: str, manifest: str, n_pairs: str, settings: str) -> None:
    torch.set_num_threads(1)
    records = read_manifest(manifest)[: int(n_pairs)]
    if any(r.moving_as_fixed is None for r in records):
        sys.exit(f"{manifest}: needs a moving_as_fixed column (a phantom manifest)")
    models = {"raw": load_model(model_path, "cpu", translate=False), "translator": load_model(model_path, "cpu")}
    models["truth"] = load_model(model_path, "cpu")
    network = models["truth"].model
    if network.translator is None:
        sys.exit(f"{model_path}: the model has no translator")
    perfect = PerfectTranslation(network.translator)
    network.translator = perfect
    if network.guide is not None:  # the refinement matches the guide's channel (3D: the slice-wise guide)
        network.guide = perfect
    shipped = models["raw"].config
    for overrides in ast.literal_eval(settings):
        for source, registrar in models.items():
            registrar.config = shipped.updated(refine=overrides)
            dice = []
            for record in records:
                moving, fixed, moving_seg, fixed_seg = load_pair(record)
                truth = normalize_intensity(load_image(record.moving_as_fixed).array, None, shipped.model.hu_curve)
                perfect.truth = torch.from_numpy(np.ascontiguousarray(truth, dtype=np.float32))[None, None]
                result = registrar.register(moving, fixed, moving_seg=moving_seg)
                dice.append(overlap_metrics(result.warped_seg, fixed_seg.array, voxel_spacing(fixed)).dice_mean)
            print(f"{source:10s} {overrides}: Dice {np.mean(dice):.4f}", flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:])
