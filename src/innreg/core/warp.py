"""Spatial transformer, field integration and composition: the one warp of innreg.

Displacement-field convention (used everywhere in innreg, and written into every field file):

* A displacement field ``ddf`` has shape ``(N, dim, *spatial)`` for an image of shape ``(N, C, *spatial)``.
* Units are **voxels** of the grid it lives on; channel ``k`` is the displacement along tensor axis
  ``k`` of the spatial dims (for a NIfTI volume loaded as ``(i, j, k)`` that is voxel axis i, j, k).
* It is a **pull-back** (backward) map: ``warped(x) = moving(x + ddf(x))``; the field is defined on
  the fixed image's grid.
* Out-of-grid samples of images read zero (``padding="zeros"``; :func:`warp`'s ``fill`` sets another value),
  fields are extended by their border value when composed.
* Sampling uses ``align_corners=True``, so voxel centres sit exactly on the grid (the VoxelMorph/MONAI
  ``Warp`` convention).
"""

from __future__ import annotations

import functools
import torch
import torch.nn.functional as F
from torch import Tensor

from innreg.core.enums import InterpMode, PaddingMode
from innreg.core.filters import resize_linear


def identity_grid(shape: tuple[int, ...], device=None, dtype=torch.float32) -> Tensor:
    """Voxel coordinates of a grid, shape ``(len(shape), *shape)``; channel k holds the index along axis k."""
    axes = [torch.arange(s, device=device, dtype=dtype) for s in shape]
    return torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=0)


@functools.lru_cache(maxsize=32)
def _sampling_grid(shape: tuple[int, ...], device: torch.device, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """The identity in ``grid_sample`` coordinates and the voxel-to-``[-1, 1]`` scale of ``shape``.

    ``grid_sample`` wants coordinates in [-1, 1] (``align_corners=True``), channels-last, in
    (x, y[, z]) = reversed axis order. Cached: warping runs many times per step on the same grids.
    """
    dim = len(shape)
    scale = torch.tensor([2.0 / max(s - 1, 1) for s in shape], device=device, dtype=dtype).view(1, dim, *([1] * dim))
    base = identity_grid(shape, device, dtype).unsqueeze(0) * scale - 1.0
    return base.permute(0, *range(2, dim + 2), 1).flip(-1).contiguous(), scale


def _check_pair(image: Tensor, ddf: Tensor, same_grid: bool = True) -> None:
    dim = ddf.shape[1]
    if dim not in (2, 3) or ddf.dim() != dim + 2:
        raise ValueError(f"ddf must have shape (N, dim, *spatial) with dim 2 or 3, got {tuple(ddf.shape)}")
    if image.dim() != dim + 2 or (same_grid and image.shape[2:] != ddf.shape[2:]):
        raise ValueError(
            f"image {tuple(image.shape)} and ddf {tuple(ddf.shape)} must share N and the spatial shape"
        )
    if image.shape[0] != ddf.shape[0] and image.shape[0] != 1 and ddf.shape[0] != 1:
        raise ValueError(f"batch sizes differ: image {image.shape[0]}, ddf {ddf.shape[0]}")


def warp(
    image: Tensor,
    ddf: Tensor,
    mode: InterpMode | str = InterpMode.BILINEAR,
    padding: PaddingMode | str = PaddingMode.ZEROS,
    fill: float = 0.0,
) -> Tensor:
    """Pull ``image`` back through ``ddf``: ``out(x) = image(x + ddf(x))``.

    Args:
        image: ``(N, C, *spatial)`` float tensor, or an integer label map with ``nearest``: its values come
            back exactly, whatever their size (see :func:`_warp_labels`).
        ddf: ``(N, dim, *spatial)`` displacement in voxels, channel k along spatial axis k.
        mode: ``bilinear`` for intensities and fields, ``nearest`` for label maps.
        padding: ``zeros`` or ``border``.
        fill: what out-of-grid samples read with ``zeros`` padding instead of 0 (air, -1000, for CT in HU).

    Returns:
        The warped image, same shape and dtype as ``image`` (batch broadcast if one of them has N == 1).
    """
    _check_pair(image, ddf)
    if not image.is_floating_point() and InterpMode(mode) == InterpMode.NEAREST:
        return _warp_labels(image, ddf, PaddingMode(padding), int(fill))
    if fill:
        return _pull_back(image - fill, ddf, InterpMode(mode), PaddingMode(padding)) + fill
    return _pull_back(image, ddf, InterpMode(mode), PaddingMode(padding))


def _warp_labels(labels: Tensor, ddf: Tensor, padding: PaddingMode, fill: int) -> Tensor:
    """Nearest-neighbour :func:`warp` of an integer label map, every value exact. Sampling goes through
    ``ddf``'s float type, which holds integers exactly only up to a size (float32: 2**24): label maps whose
    values lie within that of ``fill`` (tissue classes, most atlases) are sampled as they are; others (atlas
    ids such as 614454277, which float32 rounds) through the indices of their sorted distinct values (and
    ``fill``), a sort that the first path saves (about 1 % of a 2D registration)."""
    codes = labels.long() - fill  # zeros padding reads 0, so codes are taken relative to fill's
    if codes.abs().max().item() <= round(2 / torch.finfo(ddf.dtype).eps):  # int vs int: exact
        decode = lambda sampled: sampled + fill  # noqa: E731
    else:
        values, index = torch.unique(torch.cat([labels.flatten(), labels.new_tensor([fill])]), return_inverse=True)
        outside = index[-1]
        codes = index[:-1].view(labels.shape) - outside
        decode = lambda sampled: values[sampled + outside]  # noqa: E731
    sampled = _pull_back(codes.to(ddf.dtype), ddf, InterpMode.NEAREST, padding).round().long()
    return decode(sampled).to(labels.dtype)


def sample_on_grid(image: Tensor, ddf: Tensor, padding: PaddingMode | str = PaddingMode.ZEROS) -> Tensor:
    """:func:`warp` of ``image`` onto the grid of ``ddf``, which may be coarser or finer than the image's:
    ``out(p) = image(p + ddf(p))`` at the points ``p`` of ``ddf``'s grid, both grids spanning the same
    extent with their corner voxels aligned (as :func:`resize_field`); ``ddf`` in voxels of its own grid.

    Args:
        image: ``(N, C, *S)`` float tensor.
        ddf: ``(N, dim, *G)`` displacement in voxels of ``G``.
        padding: ``zeros`` or ``border``.

    Returns:
        ``(N, C, *G)``, bilinear.
    """
    _check_pair(image, ddf, same_grid=False)
    return _pull_back(image, ddf, InterpMode.BILINEAR, PaddingMode(padding))


def _pull_back(image: Tensor, ddf: Tensor, mode: InterpMode, padding: PaddingMode) -> Tensor:
    dim = ddf.shape[1]
    base, scale = _sampling_grid(tuple(ddf.shape[2:]), ddf.device, ddf.dtype)
    grid = base + (ddf * scale).permute(0, *range(2, dim + 2), 1).flip(-1)
    n = max(image.shape[0], ddf.shape[0])
    image = image.expand(n, *image.shape[1:])
    grid = grid.expand(n, *grid.shape[1:])
    out = F.grid_sample(
        image.to(ddf.dtype), grid, mode=mode.value, padding_mode=padding.value, align_corners=True
    )
    return out.to(image.dtype) if image.is_floating_point() else out.round().to(image.dtype)


def similarity_weight(
    fixed_mask: Tensor | None, moving_mask: Tensor | None, ddf: Tensor, padding: PaddingMode | str = PaddingMode.ZEROS
) -> Tensor | None:
    """Voxel weights of an image similarity on the fixed grid from optional masks.

    Args:
        fixed_mask: ``(N, 1, *S)`` weights on the fixed image, or ``None``.
        moving_mask: ``(N, 1, *M)`` weights on the moving image (moving space, on any grid of the same
            extent), or ``None``; pulled back through ``ddf`` (bilinear, so soft at its edges) like the
            moving image (:func:`sample_on_grid`).
        ddf: ``(N, dim, *S)`` the current displacement.
        padding: what the moving mask reads outside the grid.

    Returns:
        ``fixed_mask * warp(moving_mask, ddf)`` (either factor alone if the other is ``None``), or
        ``None`` when both masks are ``None``.
    """
    moved = None if moving_mask is None else sample_on_grid(moving_mask, ddf, padding=padding)
    if fixed_mask is None or moved is None:
        return fixed_mask if moved is None else moved
    return fixed_mask * moved


def compose(outer: Tensor, inner: Tensor) -> Tensor:
    """Displacement of ``x -> outer(inner(x))`` for pull-back fields: ``inner(x) + outer(x + inner(x))``.

    Warping with the result equals warping with ``outer`` first and then with ``inner``, i.e.
    ``warp(warp(img, outer), inner) ~= warp(img, compose(outer, inner))``.
    """
    return inner + warp(outer, inner, padding=PaddingMode.BORDER)


def integrate_velocity(velocity: Tensor, steps: int = 7) -> Tensor:
    """Exponentiate a stationary velocity field by scaling and squaring.

    Args:
        velocity: ``(N, dim, *spatial)`` velocity in voxels.
        steps: number of squarings; the field is divided by ``2**steps`` first.

    Returns:
        The displacement of the diffeomorphism ``exp(velocity)`` (same convention as :func:`warp`).
        ``integrate_velocity(-v)`` is its inverse.
    """
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    ddf = velocity / (2**steps)
    for _ in range(steps):
        ddf = compose(ddf, ddf)
    return ddf


def resize_field(ddf: Tensor, shape: tuple[int, ...]) -> Tensor:
    """Resample a displacement field to another grid of the same extent and rescale its voxel units."""
    dim = ddf.shape[1]
    old = ddf.shape[2:]
    if tuple(old) == tuple(shape):
        return ddf
    out = resize_linear(ddf, shape)
    factors = torch.tensor(
        [(s - 1) / max(o - 1, 1) for s, o in zip(shape, old)], device=ddf.device, dtype=ddf.dtype
    )
    return out * factors.view(1, dim, *([1] * dim))


def invert_field(ddf: Tensor, iterations: int = 20) -> Tensor:
    """Approximate inverse of a displacement field by fixed-point iteration.

    Solves ``v(x) = -ddf(x + v(x))``, i.e. ``compose(ddf, v) = 0``: warping with ``v`` undoes
    warping with ``ddf``. The iteration converges where the map is invertible and
    ``|grad ddf| < 1``; near folds it returns the last iterate.

    Args:
        ddf: ``(N, dim, *spatial)`` displacement in voxels.
        iterations: fixed-point steps (the error shrinks roughly geometrically).

    Returns:
        The inverse displacement, same shape as ``ddf``.
    """
    if iterations < 0:
        raise ValueError(f"iterations must be >= 0, got {iterations}")
    inverse = -ddf
    for _ in range(iterations):
        inverse = -warp(ddf, inverse, padding=PaddingMode.BORDER)
    return inverse
