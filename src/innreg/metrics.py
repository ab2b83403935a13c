"""Evaluation metrics: Dice, HD95 (mm), Jacobian determinant and folding.

Every metric here is the single implementation used by evaluation, baselines and benchmarks.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


def jacobian_determinant(ddf: Tensor) -> Tensor:
    """Jacobian determinant of the map ``x -> x + ddf(x)``.

    Args:
        ddf: ``(N, dim, *spatial)`` displacement in voxels (convention of :mod:`innreg.nn.warp`).

    Returns:
        ``(N, *spatial)`` determinants, from central differences inside and one-sided ones at the
        border (``torch.gradient``). Values <= 0 mark folding.
    """
    dim = ddf.shape[1]
    if dim not in (2, 3) or ddf.dim() != dim + 2:
        raise ValueError(f"ddf must have shape (N, dim, *spatial), got {tuple(ddf.shape)}")
    # grads[k][:, i] = d u_i / d x_k
    grads = torch.gradient(ddf, dim=tuple(range(2, dim + 2)))
    jac = torch.stack(grads, dim=2)  # (N, i, k, *spatial)
    eye = torch.eye(dim, dtype=ddf.dtype, device=ddf.device).view(1, dim, dim, *([1] * dim))
    jac = (jac + eye).movedim((1, 2), (-2, -1))
    return torch.linalg.det(jac)
