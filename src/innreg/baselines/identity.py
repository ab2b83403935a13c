"""The identity transform: the "no registration" reference row."""

from __future__ import annotations

import time

import numpy as np

from innreg.baselines.base import Method, pair_arrays
from innreg.data import normalize_percentile
from innreg.inference import RegistrationResult


class IdentityMethod(Method):
    """Zero displacement: the warped image is the moving image itself."""

    name = "identity"

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
