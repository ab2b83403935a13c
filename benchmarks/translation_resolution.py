"""What a translation computed on a coarser working grid can reach by NCC with the truth (run by hand).

Usage:
    python benchmarks/translation_resolution.py TEST.csv [FACTOR]

``innreg evaluate`` scores the translated moving image against ``moving_as_fixed`` (the moving subject
rendered in the fixed contrast) by NCC inside the head, and the raw moving image as the floor. A model
with ``model.input_factor`` > 1 (3D on a CPU: 2) translates on the working grid and resizes back, as
:func:`innreg.pipeline.stage_pair` does; the floor keeps full resolution. For every pair of ``TEST.csv``
(with a ``moving_as_fixed`` column) this prints, as means: the floor; the raw image taken to the working
grid and back (the floor at the translation's resolution); and the truth taken there and back (the
best any translation on that grid can score). ``benchmarks/RESULTS.md`` section 13.
"""

from __future__ import annotations

import sys

import numpy as np
import torch

from innreg.core.filters import downsample, resize_linear
from innreg.data import normalize_percentile, read_manifest
from innreg.data.io import load_image
from innreg.evaluation import head_mask
from innreg.metrics import ncc


def there_and_back(image: np.ndarray, factor: int) -> np.ndarray:
    """``image`` downsampled by ``factor`` and resized back, as the pipeline resizes a translation."""
    tensor = torch.as_tensor(image, dtype=torch.float32)[None, None]
    return resize_linear(downsample(tensor, factor), tuple(tensor.shape[2:]))[0, 0].numpy()


def resolution_nccs(moving: np.ndarray, truth: np.ndarray, factor: int) -> tuple[float, float, float]:
    """NCC inside the head of ``truth`` with it: ``moving``, ``moving`` there and back, ``truth`` there and back."""
    mask = head_mask(truth)
    reference = normalize_percentile(truth, mask=mask)

    def score(image: np.ndarray) -> float:
        return ncc(normalize_percentile(image, mask=mask), reference, mask)

    # The pipeline translates the moving image after mapping it to [0, 1] by its percentiles.
    return score(moving), score(there_and_back(normalize_percentile(moving), factor)), score(there_and_back(reference, factor))


def main(argv: list[str]) -> None:
    manifest, factor = argv[0], int(argv[1]) if len(argv) > 1 else 2
    rows = [
        resolution_nccs(load_image(r.moving).array, load_image(r.moving_as_fixed).array, factor)
        for r in read_manifest(manifest)
    ]
    floor, coarse_floor, ceiling = np.mean(rows, axis=0)
    print(
        f"{manifest} ({len(rows)} pairs, factor {factor}): floor {floor:.3f}, raw on the working grid and back "
        f"{coarse_floor:.3f}, truth on the working grid and back {ceiling:.3f}"
    )


if __name__ == "__main__":
    main(sys.argv[1:])
