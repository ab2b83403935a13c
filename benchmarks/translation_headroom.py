"""How much the translation could add: the refinement guided by the raw, translated or perfectly translated image.

Usage:
    python benchmarks/translation_headroom.py MODEL.pt TEST.csv N_PAIRS 0,3,10,30

For the first ``N_PAIRS`` pairs of a phantom manifest (it needs the ``moving_as_fixed`` column: the moving
subject rendered in the fixed modality, a perfect translation), the model's pipeline
(:func:`innreg.pipeline.registration_chain`) runs with channel 1 of the stage pair holding the raw moving
image (``--no-translate``), the model's translation, or ``moving_as_fixed``, for each
``refine.translation_weight`` given; prints the mean Dice over the phantom's labels 1-3. Voxel units
(``reference_spacing: 0``), as the weights were chosen.
"""

from __future__ import annotations

import sys

import numpy as np
import torch

from innreg import load_model
from innreg.chain import StagePair
from innreg.core.warp import warp
from innreg.data import load_image, load_pair, normalize_percentile, read_manifest
from innreg.metrics import dice_per_label
from innreg.pipeline import registration_chain, stage_pair


def _tensor(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))[None, None]


def main(model_path: str, manifest: str, n_pairs: str, weights: str) -> None:
    torch.set_num_threads(1)
    registration = load_model(model_path, "cpu")
    records = read_manifest(manifest)[: int(n_pairs)]
    for source in ("raw", "translator", "truth"):
        for weight in (float(w) for w in weights.split(",")):
            config = registration.config.updated(refine={"translation_weight": weight, "reference_spacing": 0.0})
            chain = registration_chain(registration.model, config)
            dice = []
            for record in records:
                moving, fixed, moving_seg, fixed_seg = load_pair(record)
                m, f = _tensor(normalize_percentile(moving.array)), _tensor(normalize_percentile(fixed.array))
                if source == "truth":
                    truth = _tensor(normalize_percentile(load_image(record.moving_as_fixed).array))
                    pair = StagePair(torch.cat([m, truth], dim=1), f)
                else:
                    pair = stage_pair(registration.model, m, f, translate=source == "translator")
                with torch.no_grad():
                    ddf = chain(pair, with_inverse=False).ddf
                warped = warp(_tensor(moving_seg.array), ddf, mode="nearest")[0, 0].numpy()
                dice.append(np.nanmean(list(dice_per_label(warped, fixed_seg.array, labels=[1, 2, 3]).values())))
            print(f"{source:10s} w = {weight:5.1f}: Dice {np.mean(dice):.4f}", flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:])
