"""Jacobian determinant of a displacement field: the local volume change, <= 0 where the map folds."""

from __future__ import annotations

import torch
from torch import Tensor

from innreg.core.filters import spatial_gradient


def jacobian_determinant(ddf: Tensor) -> Tensor:
    """Jacobian determinant of the map ``x -> x + ddf(x)``.

    Args:
        ddf: ``(N, dim, *spatial)`` displacement in voxels (convention of :mod:`innreg.core.warp`).

    Returns:
        ``(N, *spatial)`` determinants, from central differences inside and one-sided ones at the
        border (:func:`innreg.core.filters.spatial_gradient`). Values <= 0 mark folding.
    """
    dim = ddf.shape[1]
    if dim not in (2, 3) or ddf.dim() != dim + 2:
        raise ValueError(f"ddf must have shape (N, dim, *spatial), got {tuple(ddf.shape)}")
    jac = spatial_gradient(ddf)  # (N, i, k, *spatial): d u_i / d x_k
    eye = torch.eye(dim, dtype=ddf.dtype, device=ddf.device).view(1, dim, dim, *([1] * dim))
    jac = (jac + eye).movedim((1, 2), (-2, -1))
    return torch.linalg.det(jac)
