"""How much room the translation has on a phantom set: the refinement on the multi-modal pair against
the same pairs made mono-modal.

Usage:
    python benchmarks/mono_modal_ceiling.py MULTI.csv MONO.csv N_PAIRS [MODEL.pt]

(``MONO.csv`` ``-``: no twin set; the phantom's CT pairs draw their appearance differently and have no
twin, so only the ``moving_as_fixed`` rows are run.)

``MULTI.csv`` is a phantom manifest (e.g. PD -> T1) and ``MONO.csv`` the same ``innreg phantom`` command
with ``--moving`` set to the fixed modality (e.g. T1 -> T1): the phantom draws anatomy, deformation and
fixed image from the seed alone, so the two sets differ only in the moving image's contrast (the script
checks that the fixed images and true fields agree). ``MONO``'s moving image is a scan of the moving
subject in the fixed modality with its own noise, bias and ghosting, what a perfect translation of
a real scan could at best be; ``moving_as_fixed`` is the same subject rendered without acquisition
effects.

For the first ``N_PAIRS`` pairs, the refinement with the model-free defaults (``RefineConfig()``, voxel
size from the fixed image) runs from the identity, so only the matching criterion differs between rows
(the network's start is left out). Rows: MIND of the raw pair only; the raw image in the intensity channel
(``--no-translate``); ``moving_as_fixed`` in that channel; and mono-modal rows, where the refinement's
moving image is the mono-modal scan or ``moving_as_fixed``. With ``MODEL.pt``: its translation in the
intensity channel (the default pipeline's criterion) and the translation as the moving image (MIND of
it and its intensity: the method's idea taken literally). Prints mean Dice over the phantom's labels 1-3
per row.
"""

from __future__ import annotations

import sys

import numpy as np
import torch

from innreg import load_model
from innreg.config import RefineConfig
from innreg.core.warp import warp
from innreg.data import PairRecord, load_field, load_image, load_pair, normalize_percentile, read_manifest, voxel_spacing
from innreg.metrics import dice_per_label
from innreg.pipeline import stage_pair
from innreg.refinement import refine_registration


def _tensor(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(normalize_percentile(array), dtype=np.float32))[None, None]


def _dice(moving_seg: np.ndarray, fixed_seg: np.ndarray, ddf: torch.Tensor) -> float:
    warped = warp(torch.from_numpy(moving_seg.astype(np.float32))[None, None], ddf, mode="nearest")[0, 0].numpy()
    return float(np.nanmean(list(dice_per_label(warped, fixed_seg, labels=[1, 2, 3]).values())))


def twin_problem(record: PairRecord, twin: PairRecord) -> str | None:
    """Why ``twin`` is not ``record``'s pair with another moving contrast (``None`` when it is): the fixed
    images and the true fields must be identical."""
    if not np.array_equal(load_image(twin.fixed).array, load_image(record.fixed).array):
        return f"{twin.fixed}: not the fixed image of {record.fixed} (same phantom command and seed needed)"
    if not np.array_equal(load_field(twin.true_ddf), load_field(record.true_ddf)):
        return f"{twin.true_ddf}: not the true field of {record.true_ddf}"
    return None


def main(multi: str, mono: str, n_pairs: str, model_path: str | None = None) -> None:
    torch.set_num_threads(1)
    model = None if model_path is None else load_model(model_path, "cpu").model
    config = RefineConfig()
    scores: dict[str, list[float]] = {}
    records = read_manifest(multi)[: int(n_pairs)]
    twins = [None] * len(records) if mono == "-" else read_manifest(mono)[: int(n_pairs)]
    for record, twin in zip(records, twins):
        problem = None if twin is None else twin_problem(record, twin)
        if problem:
            sys.exit(problem)
        moving, fixed, moving_seg, fixed_seg = load_pair(record)
        m, f = _tensor(moving.array), _tensor(fixed.array)
        truth = _tensor(load_image(record.moving_as_fixed).array)
        rows: dict[str, tuple[torch.Tensor, torch.Tensor | None]] = {
            "multi-modal: MIND of the raw pair only": (m, None),
            "multi-modal: + raw intensity (--no-translate)": (m, m),
            "multi-modal: + moving_as_fixed intensity": (m, truth),
        }
        if model is not None:
            with torch.no_grad():
                translated = stage_pair(model, m, f).translated
            rows["multi-modal: + our translation's intensity (default)"] = (m, translated)
            rows["mono-modal on our translation (MIND + intensity)"] = (translated, translated)
        if twin is not None:
            scan = _tensor(load_image(twin.moving).array)
            rows["mono-modal: scan in the fixed modality (MIND + intensity)"] = (scan, scan)
        rows["mono-modal: moving_as_fixed (MIND + intensity)"] = (truth, truth)
        start = torch.zeros(1, f.dim() - 2, *f.shape[2:])
        for name, (image, channel) in rows.items():
            ddf, _ = refine_registration(image, f, start, None, config, translated=channel, spacing=voxel_spacing(fixed))
            scores.setdefault(name, []).append(_dice(moving_seg.array, fixed_seg.array, ddf))
        scores.setdefault("unregistered", []).append(_dice(moving_seg.array, fixed_seg.array, start))
        print(f"{record.moving.name}: " + ", ".join(f"{v[-1]:.3f}" for v in scores.values()), flush=True)
    for name, values in scores.items():
        print(f"| {name} | {np.mean(values):.4f} |")


if __name__ == "__main__":
    main(*sys.argv[1:])
