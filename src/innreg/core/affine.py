"""The one affine-to-field conversion of innreg: an affine map about the grid centre as a displacement.

The network's affine stage, the test-time affine correction and the simulated motion of the phantom
all describe an affine map as ``p -> A (p - c) + c + t`` in voxel coordinates (``c`` the grid centre)
and turn it into a pull-back field here.
"""

from __future__ import annotations

import torch
from torch import Tensor

from innreg.core.warp import identity_grid


def affine_ddf(matrix: Tensor, translation: Tensor, shape: tuple[int, ...], inner: Tensor | None = None) -> Tensor:
    """Displacement of the affine map ``p -> A (p - c) + c + t`` evaluated at ``p = x + inner(x)``.

    Args:
        matrix: ``(N, dim, dim)`` linear part ``A`` in voxel coordinates.
        translation: ``(N, dim)`` translation ``t`` in voxels.
        shape: spatial shape ``S``; ``c`` is the grid centre.
        inner: optional ``(N, dim, *S)`` displacement applied first (then the result is the exact
            composition ``x -> affine(x + inner(x))``, no interpolation).

    Returns:
        ``(N, dim, *S)`` displacement in voxels (pull-back convention of :mod:`innreg.core.warp`).
    """
    dim = len(shape)
    grid = identity_grid(tuple(shape), matrix.device, matrix.dtype).unsqueeze(0)
    centre = torch.tensor([(s - 1) / 2 for s in shape], device=matrix.device, dtype=matrix.dtype)
    centre = centre.view(1, dim, *([1] * dim))
    points = grid if inner is None else grid + inner
    mapped = torch.einsum("nij,nj...->ni...", matrix, points - centre) + centre
    return mapped + translation.view(*translation.shape, *([1] * dim)) - grid


def invert_affine(matrix: Tensor, translation: Tensor) -> tuple[Tensor, Tensor]:
    """Parameters ``(A^-1, -A^-1 t)`` of the inverse of ``p -> A (p - c) + c + t``."""
    inv = torch.linalg.inv(matrix)
    return inv, -torch.einsum("nij,nj->ni", inv, translation)


def rescale_affine(
    matrix: Tensor, translation: Tensor, shape: tuple[int, ...], new_shape: tuple[int, ...]
) -> tuple[Tensor, Tensor]:
    """Parameters of the same affine map on a grid of ``new_shape`` covering the extent of ``shape``.

    Voxels map as ``p' = D p`` with ``D = diag((new - 1) / (old - 1))`` (corner voxels aligned, as
    :func:`~innreg.core.filters.resize_linear`), and the centre with them, so ``A' = D A D^-1`` and
    ``t' = D t``.
    """
    dim = len(shape)
    d = torch.tensor(
        [(new - 1) / max(old - 1, 1) for new, old in zip(new_shape, shape)], device=matrix.device, dtype=matrix.dtype
    )
    return matrix * d.view(1, dim, 1) / d.view(1, 1, dim), translation * d
