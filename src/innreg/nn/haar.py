"""Invertible Haar-wavelet mixing of squeezed cells (2D and 3D).

After the space-to-channel squeeze each input channel has ``2**dim`` channels, one per offset in its
2x2 (2x2x2) cell. Those are raw pixel phases: couplings that act differently on them leave a
checkerboard cell texture in the output. The orthonormal Haar transform replaces the phases by one
low-pass (cell mean) and ``2**dim - 1`` detail channels, so the couplings see a half-resolution image
plus its fine structure (as in invertible rescaling and wavelet-flow networks). The matrix is the
normalised Hadamard matrix ``H = kron(h, h[, h]) / 2**(dim/2)``, ``h = [[1, 1], [1, -1]]``: orthogonal
and symmetric, so it is its own inverse and the translator stays exactly invertible.
"""

from __future__ import annotations

import functools

import torch
from torch import Tensor


@functools.lru_cache(maxsize=8)
def haar_matrix(dim: int, device: torch.device, dtype: torch.dtype) -> Tensor:
    """``(2**dim, 2**dim)`` orthonormal Haar (Hadamard) matrix, rows ordered like :func:`squeeze`'s offsets."""
    h = torch.tensor([[1.0, 1.0], [1.0, -1.0]], dtype=torch.float64)
    matrix = h
    for _ in range(dim - 1):
        matrix = torch.kron(matrix, h)
    return (matrix / 2 ** (dim / 2)).to(device=device, dtype=dtype)


def haar_mix(z: Tensor, dim: int, full_cells: Tensor | None = None) -> Tensor:
    """Haar transform of every cell of a squeezed tensor; also its inverse (the matrix is an involution).

    Args:
        z: ``(N, C * 2**dim, *half)``, channel ``c * 2**dim + o`` = offset ``o`` of input channel ``c``.
        dim: 2 or 3.
        full_cells: ``(1, 1, *half)`` bool, cells whose voxels are all real (odd sizes: the border cells
            that hold padding are left as they are, so padded slots stay exactly zero), or ``None``.

    Returns:
        Same shape; channel ``c * 2**dim + k`` holds Haar band ``k`` (``k = 0`` the low-pass).
    """
    n, k, *half = z.shape
    cell = 2**dim
    if k % cell:
        raise ValueError(f"expected a multiple of {cell} channels, got {tuple(z.shape)}")
    matrix = haar_matrix(dim, z.device, z.dtype)
    mixed = torch.einsum("ab,ncb...->nca...", matrix, z.reshape(n, k // cell, cell, *half)).reshape(z.shape)
    return mixed if full_cells is None else torch.where(full_cells, mixed, z)
