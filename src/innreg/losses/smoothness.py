"""Diffusion regulariser of a displacement field."""

from __future__ import annotations

from torch import Tensor


def gradient_smoothness(ddf: Tensor) -> Tensor:
    """Mean squared forward difference of a displacement field (voxel units).

    For each spatial axis ``k`` the squared forward differences ``(u(x + e_k) - u(x))^2`` of all
    components are averaged over the batch, components and positions; the result is the mean of these
    per-axis averages (the VoxelMorph ``Grad('l2')`` definition, without its integer multiplier).

    Args:
        ddf: ``(N, dim, *spatial)`` displacement, dim 2 or 3.

    Returns:
        Scalar tensor; 0 exactly for a constant (translation) field.
    """
    dim = ddf.shape[1] if ddf.dim() >= 2 else -1
    if dim not in (2, 3) or ddf.dim() != dim + 2:
        raise ValueError(f"ddf must have shape (N, dim, *spatial) with dim 2 or 3, got {tuple(ddf.shape)}")
    if min(ddf.shape[2:]) < 2:
        raise ValueError(f"every spatial size must be >= 2 for forward differences, got {tuple(ddf.shape[2:])}")
    per_axis = [(ddf.diff(dim=axis) ** 2).mean() for axis in range(2, dim + 2)]
    return sum(per_axis) / dim
