"""What a translator gets right and wrong, tissue by tissue (run by hand; RESULTS.md section 2c).

Usage:
    python benchmarks/translation_fidelity.py TEST.csv N_PAIRS MODEL.pt [MODEL.pt ...]

For the first ``N_PAIRS`` 2D pairs of a phantom manifest (it needs ``moving_seg`` and ``moving_as_fixed``,
the moving subject rendered in the fixed modality without noise or bias: a perfect translation), each
model translates the moving image as registration does (:func:`innreg.pipeline.stage_pair`). Printed,
averaged over the pairs: the mean and standard deviation of the translation and of the truth inside
each label of the moving segmentation (tissue contrast and within-tissue spread; the phantom's labels 1-3
are CSF, grey and white matter), and the mean magnitude of the Haar HH band inside the brain (the 2x2
checkerboard component: noise or cell texture) of the translation, the truth and the moving image.
For an invertible translator also the NCC, inside the head (truth above 0.02), of the inverse applied
to the truth with the moving image: whether ``T^-1`` still translates the fixed modality back
(RESULTS.md section 8); and the same for the truth with white noise of the fixed image's level added
(its s.d. estimated from the fixed image's HH band inside the head, median / 0.6745, Donoho's rule):
whether ``T^-1`` translates a real, noisy scan of the fixed modality back (RESULTS.md section 15).
"""

from __future__ import annotations

import sys

import numpy as np
import torch

from innreg import load_model
from innreg.core.filters import downsample, resize_linear
from innreg.data import load_image, load_pair, normalize_percentile, read_manifest
from innreg.metrics import ncc
from innreg.nn.coupling import squeeze
from innreg.nn.haar import haar_mix
from innreg.pipeline import stage_pair

LABELS = {1: "CSF", 2: "GM", 3: "WM"}


def haar_hh(image: np.ndarray) -> np.ndarray:
    """The HH band of the translator's own one-level orthonormal Haar transform (:mod:`innreg.nn.haar`)
    of a 2D image, on its even-sized crop."""
    even = image[: image.shape[0] // 2 * 2, : image.shape[1] // 2 * 2]
    x = torch.from_numpy(np.ascontiguousarray(even, dtype=np.float64))[None, None]
    return haar_mix(squeeze(x), dim=2)[0, 3].numpy()


def whole_cells(mask: np.ndarray) -> np.ndarray:
    """The 2x2 cells of :func:`haar_hh`'s grid whose four voxels all lie inside ``mask``."""
    m = mask[: mask.shape[0] // 2 * 2, : mask.shape[1] // 2 * 2]
    return m[0::2, 0::2] & m[0::2, 1::2] & m[1::2, 0::2] & m[1::2, 1::2]


def noise_sd(image: np.ndarray, mask: np.ndarray) -> float:
    """The s.d. of white noise in a 2D ``image``, estimated inside ``mask`` by Donoho's rule: the median
    of the HH band's magnitude over 0.6745 (robust to the band's few edge responses)."""
    return float(np.median(np.abs(haar_hh(image))[whole_cells(mask)]) / 0.6745)


def _tensor(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))[None, None]


def main(manifest: str, n_pairs: str, *model_paths: str) -> None:
    torch.set_num_threads(1)
    records = read_manifest(manifest)[: int(n_pairs)]
    if any(r.moving_seg is None or r.moving_as_fixed is None for r in records):
        raise SystemExit(f"{manifest}: needs moving_seg and moving_as_fixed columns (a phantom manifest)")
    for path in model_paths:
        model = load_model(path, "cpu").model
        rows, inverse_ncc, noisy_inverse_ncc = [], [], []
        rng = np.random.default_rng(0)
        for record in records:
            moving, fixed, moving_seg, _ = load_pair(record)
            m, f = _tensor(normalize_percentile(moving.array)), _tensor(normalize_percentile(fixed.array))
            truth = normalize_percentile(load_image(record.moving_as_fixed).array)
            with torch.no_grad():
                translated = stage_pair(model, m, f).moving[0, -1].numpy()
            seg = moving_seg.array
            row = []
            for label in LABELS:
                inside = seg == label
                row += [translated[inside].mean(), truth[inside].mean(), translated[inside].std(), truth[inside].std()]
            brain = whole_cells(seg > 0)
            row += [np.abs(haar_hh(a))[brain].mean() for a in (translated, truth, m[0, 0].numpy())]
            if hasattr(model.translator, "inverse"):
                fixed_image = f[0, 0].numpy()
                noisy = truth + rng.normal(0.0, noise_sd(fixed_image, fixed_image > 0.02), truth.shape)
                for source, scores in ((truth, inverse_ncc), (noisy, noisy_inverse_ncc)):
                    with torch.no_grad():
                        small = downsample(_tensor(source), model.config.input_factor)
                        back = resize_linear(model.translator.inverse(small), truth.shape)[0, 0].numpy()
                    scores.append(ncc(back, m[0, 0].numpy(), truth > 0.02))
            rows.append(row)
        inverse = (
            f"; NCC of T^-1(truth) with the moving image {np.mean(inverse_ncc):.3f}, "
            f"of T^-1(truth + the fixed image's noise) {np.mean(noisy_inverse_ncc):.3f}"
            if inverse_ncc else ""
        )
        mean = np.mean(rows, axis=0)
        tissues = "; ".join(
            f"{name} {mean[4 * i]:.3f} (truth {mean[4 * i + 1]:.3f}), s.d. {mean[4 * i + 2]:.3f} ({mean[4 * i + 3]:.3f})"
            for i, name in enumerate(LABELS.values())
        )
        print(f"{path}: {tissues}; |HH| in the brain {mean[-3]:.4f} (truth {mean[-2]:.4f}, moving {mean[-1]:.4f}){inverse}")


if __name__ == "__main__":
    main(*sys.argv[1:])
