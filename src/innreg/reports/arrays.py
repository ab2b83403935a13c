"""Array preparation for figures, without matplotlib: slicing 3D data, checkerboards, grid lines, smoothing.

Conventions (shared by every figure of :mod:`innreg.reports`):

* Images are 2D ``(H, W)`` or 3D ``(X, Y, Z)`` arrays (numpy, or torch tensors, which are detached
  and copied to the CPU). A 3D input is shown by its middle slice along ``axis`` (default the last
  axis, i.e. the axial plane of a RAS volume); see :func:`central_slice`.
* Array axis 0 is drawn as rows (top to bottom) and axis 1 as columns (left to right).
* Displacement fields are ``(dim, *spatial)`` in voxels, channel ``k`` along array axis ``k``, pull-back
  (``warped(x) = moving(x + ddf(x))``), as in :mod:`innreg.core.warp`. A 3D field is sliced like the
  images and its out-of-plane component dropped; see :func:`central_field_slice`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch


def to_numpy(array: Any) -> np.ndarray:
    """A float numpy copy of an array-like or a torch tensor (detached, on the CPU)."""
    if isinstance(array, torch.Tensor):
        array = array.detach().cpu().numpy()
    return np.asarray(array, dtype=np.float64)


def central_slice(array: Any, axis: int = -1) -> np.ndarray:
    """The 2D middle slice of a 3D array along ``axis``; a 2D array passes through unchanged.

    Args:
        array: ``(H, W)`` or ``(X, Y, Z)`` array or tensor.
        axis: spatial axis sliced when ``array`` is 3D (index ``size // 2``).

    Returns:
        ``(H, W)`` float array; for 3D input the remaining axes keep their order.
    """
    array = to_numpy(array)
    if array.ndim == 2:
        return array
    if array.ndim != 3:
        raise ValueError(f"expected a 2D or 3D image, got shape {array.shape}")
    return np.take(array, array.shape[axis] // 2, axis=axis)


def central_field_slice(ddf: Any, axis: int = -1) -> np.ndarray:
    """The in-plane part of the middle slice of a displacement field.

    Args:
        ddf: ``(2, H, W)`` or ``(3, X, Y, Z)`` displacement, channel k along spatial axis k.
        axis: spatial axis sliced when the field is 3D.

    Returns:
        ``(2, H, W)`` field: the slice at ``size // 2`` along ``axis`` with the component along
        ``axis`` (out of plane) dropped, so channel k again displaces axis k of the 2D slice.
    """
    ddf = to_numpy(ddf)
    dim = ddf.shape[0] if ddf.ndim else 0
    if dim not in (2, 3) or ddf.ndim != dim + 1:
        raise ValueError(f"ddf must have shape (dim, *spatial) with dim 2 or 3, got {ddf.shape}")
    if dim == 2:
        return ddf
    spatial_axis = axis % 3
    in_plane = [k for k in range(3) if k != spatial_axis]
    sliced = np.take(ddf, ddf.shape[spatial_axis + 1] // 2, axis=spatial_axis + 1)
    return sliced[in_plane]


def checkerboard(first: Any, second: Any, tiles: int = 8) -> np.ndarray:
    """Interleave two same-shaped images in a checkerboard.

    Each axis of size ``n`` is cut into tiles of ``ceil(n / tiles)`` pixels (so about ``tiles``
    tiles per axis); tile ``(i, j, ...)`` comes from ``first`` when ``i + j + ...`` is even and from
    ``second`` otherwise.

    Args:
        first: image of any dimension.
        second: image of the same shape.
        tiles: number of tiles per axis, at least 1.

    Returns:
        Float array of the common shape.
    """
    first, second = to_numpy(first), to_numpy(second)
    if first.shape != second.shape:
        raise ValueError(f"checkerboard needs equal shapes, got {first.shape} and {second.shape}")
    if tiles < 1:
        raise ValueError(f"tiles must be >= 1, got {tiles}")
    parity = np.zeros(first.shape, dtype=np.int64)
    for axis, size in enumerate(first.shape):
        tile_size = math.ceil(size / tiles)
        index = np.arange(size) // tile_size
        parity = parity + index.reshape([-1 if a == axis else 1 for a in range(first.ndim)])
    return np.where(parity % 2 == 0, first, second)


def deformed_grid_lines(ddf: Any, step: int = 8) -> list[np.ndarray]:
    """Polylines of a regular grid moved by a 2D pull-back field, in plotting coordinates.

    Grid lines run along every ``step``-th row and column (plus the last row and column); each point
    ``x`` of a line is drawn at ``x + ddf(x)``, i.e. where the warp samples the moving image.

    Args:
        ddf: ``(2, H, W)`` displacement in voxels, channel 0 along rows, channel 1 along columns.
        step: spacing of the grid lines in pixels.

    Returns:
        List of ``(n, 2)`` arrays of ``(column, row)`` points (matplotlib ``(x, y)`` order): first
        the lines of constant row, then those of constant column.
    """
    ddf = to_numpy(ddf)
    if ddf.ndim != 3 or ddf.shape[0] != 2:
        raise ValueError(f"deformed_grid_lines needs a (2, H, W) field, got {ddf.shape}")
    if step < 1:
        raise ValueError(f"step must be >= 1, got {step}")
    height, width = ddf.shape[1:]
    rows_pos = np.arange(height)[:, None] + ddf[0]
    cols_pos = np.arange(width)[None, :] + ddf[1]
    row_ids = np.unique(np.r_[np.arange(0, height, step), height - 1])
    col_ids = np.unique(np.r_[np.arange(0, width, step), width - 1])
    lines = [np.stack([cols_pos[r], rows_pos[r]], axis=1) for r in row_ids]
    lines += [np.stack([cols_pos[:, c], rows_pos[:, c]], axis=1) for c in col_ids]
    return lines


def moving_average(values: Sequence[float], window: int) -> np.ndarray:
    """Trailing moving average: output ``i`` is the mean of the finite values among the last ``window``.

    Args:
        values: 1D sequence; NaN and inf entries are ignored (an all-non-finite window gives NaN).
        window: number of samples averaged, at least 1.

    Returns:
        Float array of the same length.
    """
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    values = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(values)
    sums = np.concatenate([[0.0], np.cumsum(np.where(finite, values, 0.0))])
    counts = np.concatenate([[0], np.cumsum(finite)])
    end = np.arange(1, len(values) + 1)
    start = np.maximum(end - window, 0)
    count = counts[end] - counts[start]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, (sums[end] - sums[start]) / count, np.nan)


# The radiologists' brain window (level 40, width 80 HU) for a head CT in Hounsfield units: between air
# (-1000) and bone (above 1000) the brain's 20-40 HU would otherwise be one flat grey.
CT_BRAIN_WINDOW_HU = (0.0, 80.0)


def looks_like_hounsfield(low: float, high: float) -> bool:
    """Whether an image whose 1st / 99th percentiles are ``low`` / ``high`` looks like CT in Hounsfield
    units: air (below -500) and bone (above 300) both present. MR magnitudes never reach far below zero,
    and a skull-stripped or already windowed CT keeps its percentile window."""
    return low <= -500.0 and high >= 300.0


def display_range(image: np.ndarray) -> tuple[float, float]:
    """Robust intensity window (1st-99th percentile) so a few bright voxels do not wash out the image;
    :data:`CT_BRAIN_WINDOW_HU` for a CT in Hounsfield units (:func:`looks_like_hounsfield`)."""
    finite = image[np.isfinite(image)]
    if finite.size == 0:
        return 0.0, 1.0
    low, high = np.percentile(finite, [1, 99])
    if looks_like_hounsfield(low, high):
        return CT_BRAIN_WINDOW_HU
    if high <= low:
        low, high = float(finite.min()), float(finite.max())
    if high <= low:
        high = low + 1.0
    return float(low), float(high)


def normalise(image: np.ndarray) -> np.ndarray:
    low, high = display_range(image)
    return np.clip((image - low) / (high - low), 0.0, 1.0)


def default_grid_step(shape: tuple[int, ...]) -> int:
    """About 8 px, fewer for tiny images (>= 4 lines) and more for large ones (<= ~48 lines)."""
    if min(shape) < 32:
        return max(1, min(shape) // 4)
    return max(8, round(max(shape) / 48))


def check_same_shape(named: Mapping[str, np.ndarray | None], shape: tuple[int, ...]) -> None:
    """Raise a ``ValueError`` naming the first array (``None`` entries skipped) whose shape is not ``shape``."""
    for name, array in named.items():
        if array is not None and array.shape != shape:
            raise ValueError(f"{name} has shape {array.shape}, expected {shape} (the fixed image's)")
