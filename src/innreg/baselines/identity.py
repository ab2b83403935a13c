"""The identity transform: the "no registration" reference row."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Sequence

import numpy as np

from innreg.baselines.base import FitInfo, Method, fit_info, pair_arrays
from innreg.data import PairRecord, normalize_percentile
from innreg.inference import RegistrationResult


class IdentityMethod(Method):
    """Zero displacement: the warped image is the moving image itself."""

    name = "identity"

    def fit(
        self,
        train_pairs: str | Path | Sequence[PairRecord],
        out_dir: str | Path,
        steps: int,
        device: str = "auto",
        progress: bool = True,
    ) -> FitInfo:
        return fit_info(0.0)

    def register(self, moving, fixed, moving_seg=None) -> RegistrationResult:
        start = time.perf_counter()
        moving_arr, _, seg_arr = pair_arrays(moving, fixed, moving_seg, self.dim)
        zero = np.zeros((self.dim, *moving_arr.shape), dtype=np.float32)
        return RegistrationResult(
            warped=moving_arr.astype(np.float32, copy=True),
            translated=normalize_percentile(moving_arr),
            ddf=zero,
            inverse_ddf=zero.copy(),
            warped_seg=None if seg_arr is None else seg_arr.copy(),
            seconds=time.perf_counter() - start,
        )
