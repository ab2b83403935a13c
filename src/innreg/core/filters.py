"""Separable filters on ``(N, C, *spatial)`` tensors: Gaussian smoothing, box means, anti-aliased
downsampling and central differences.

The Gaussian is applied as one small dense matrix per axis (``x @ G.T`` along each axis, replicate
border folded into ``G``): on the grids the refinement smooths (up to about 100 voxels per axis) a
matrix product is far faster on a CPU than ``conv1d`` with padding (measured on 2 cores: 0.07 ms vs
2.8 ms for an ``(1, 8, 96, 80)`` tensor, 3.4 ms vs 112 ms for ``(1, 3, 80, 96, 80)``).
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F
from torch import Tensor


@functools.lru_cache(maxsize=64)
def gaussian_matrix(size: int, sigma: float, device: torch.device, dtype: torch.dtype) -> Tensor:
    """``(size, size)`` matrix ``G`` with ``(G @ x)`` the Gaussian-smoothed ``x`` (replicate border).

    The kernel is truncated at ``ceil(3 * sigma)`` and normalised to sum 1, so constants are kept.
    """
    radius = max(1, math.ceil(3 * sigma))
    taps = torch.arange(-radius, radius + 1, dtype=torch.float64)
    kernel = torch.exp(-0.5 * (taps / sigma) ** 2)
    kernel /= kernel.sum()
    rows = torch.arange(size)
    matrix = torch.zeros(size, size, dtype=torch.float64)
    for offset, weight in zip(range(-radius, radius + 1), kernel):
        matrix.index_put_((rows, (rows + offset).clamp(0, size - 1)), weight.expand(size), accumulate=True)
    return matrix.to(device=device, dtype=dtype)


def _along_axis(x: Tensor, matrix: Tensor, axis: int) -> Tensor:
    """``matrix`` applied along spatial ``axis`` (0-based) of ``x``: ``out[..., i, ...] = sum_j M[i, j] x[..., j, ...]``."""
    spatial = x.shape[2:]
    last = len(spatial) - 1
    if axis == last:
        return x @ matrix.T
    # Fold the axes after `axis` into one, so the product runs on the trailing two dims.
    folded = x.reshape(*x.shape[: 2 + axis + 1], -1)
    return (matrix @ folded).reshape(x.shape)


def gaussian_smooth(x: Tensor, sigma: float) -> Tensor:
    """Smooth ``x`` (``(N, C, *spatial)``, 2D or 3D) with an isotropic Gaussian of ``sigma`` voxels.

    ``sigma <= 0`` returns ``x`` unchanged.
    """
    if sigma <= 0:
        return x
    for axis, size in enumerate(x.shape[2:]):
        x = _along_axis(x, gaussian_matrix(size, float(sigma), x.device, x.dtype), axis)
    return x


def box_mean(x: Tensor, radius: int) -> Tensor:
    """Mean of ``x`` (``(N, C, *spatial)``, 2D or 3D) over the box of ``2 * radius + 1`` voxels per axis
    around each voxel, replicate border (``radius <= 0`` returns ``x``).

    Sums of shifted slices, one axis at a time: on a CPU about 8x faster than ``avg_pool2d`` on a
    replicate-padded tensor (same values; measured 0.29 ms vs 2.2 ms for ``(1, 8, 224, 192)``, radius 1).
    """
    if radius <= 0:
        return x
    width = 2 * radius + 1
    x = F.pad(x, [radius] * (2 * (x.dim() - 2)), mode="replicate")
    for axis in range(2, x.dim()):
        size = x.shape[axis] - 2 * radius
        # The first sum is a new tensor; the others add into it (same values, fewer allocations).
        total = x.narrow(axis, 0, size) + x.narrow(axis, 1, size)
        for offset in range(2, width):
            total.add_(x.narrow(axis, offset, size))
        x = total
    return x.div_(width ** (x.dim() - 2))


def coarse_shape(shape: tuple[int, ...], factor: int) -> tuple[int, ...]:
    """Grid of ``(s - 1) // factor + 1`` voxels per axis: the same extent as ``shape`` with corner voxels
    aligned (the ``align_corners=True`` convention of :func:`innreg.core.warp.resize_field`)."""
    return tuple((s - 1) // factor + 1 for s in shape)


def resize_linear(x: Tensor, shape: tuple[int, ...]) -> Tensor:
    """``x`` (``(N, C, *spatial)``) linearly resampled onto ``shape`` over the same extent, corner
    voxels aligned (``align_corners=True``); values are not rescaled."""
    if tuple(x.shape[2:]) == tuple(shape):
        return x
    mode = ("bilinear", "trilinear")[x.dim() - 4]
    return F.interpolate(x, size=tuple(shape), mode=mode, align_corners=True)


def downsample(x: Tensor, factor: int) -> Tensor:
    """``x`` (``(N, C, *spatial)``) on the :func:`coarse_shape` grid, Gaussian-smoothed first
    (sigma ``factor / 2`` voxels) against aliasing; ``factor = 1`` returns ``x``."""
    if factor == 1:
        return x
    return resize_linear(gaussian_smooth(x, 0.5 * factor), coarse_shape(tuple(x.shape[2:]), factor))


def spatial_gradient(x: Tensor, scale: float = 1.0) -> Tensor:
    """Spatial derivatives of ``x`` (``(N, C, *spatial)``) in voxel units, times ``scale``.

    Returns:
        ``(N, C, dim, *spatial)``; ``out[:, c, k]`` is ``scale * d x_c / d axis_k``: central differences
        inside and one-sided ones at the border (the values of ``torch.gradient``, written into one
        preallocated tensor, which is 2-10x faster than ``torch.gradient`` plus ``stack`` above
        ~100x100 voxels on a CPU). The scale rides on the halving of the central differences, so it
        costs no pass of its own (a power of two, e.g. the demons' 0.5, gives the values of scaling after).
    """
    dim = x.dim() - 2
    if dim not in (2, 3) or min(x.shape[2:]) < 2:
        raise ValueError(f"expected (N, C, *spatial) with 2 or 3 spatial dims of size >= 2, got {tuple(x.shape)}")
    out = x.new_empty(x.shape[0], x.shape[1], dim, *x.shape[2:])
    for k in range(dim):
        axis, size = 2 + k, x.shape[2 + k]
        derivative = out.select(2, k)
        inner = derivative.narrow(axis, 1, size - 2)
        torch.sub(x.narrow(axis, 2, size - 2), x.narrow(axis, 0, size - 2), out=inner)
        inner.mul_(0.5 * scale)
        torch.sub(x.narrow(axis, 1, 1), x.narrow(axis, 0, 1), out=derivative.narrow(axis, 0, 1))
        torch.sub(x.narrow(axis, size - 1, 1), x.narrow(axis, size - 2, 1), out=derivative.narrow(axis, size - 1, 1))
        if scale != 1.0:
            derivative.narrow(axis, 0, 1).mul_(scale)
            derivative.narrow(axis, size - 1, 1).mul_(scale)
    return out
