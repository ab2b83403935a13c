"""Intensity normalisation, multiplicative bias fields and resampling onto another image's grid."""

from __future__ import annotations

from collections.abc import Sequence
from enum import IntEnum

import numpy as np
from scipy import ndimage

from innreg.data.io import Image


class Interpolation(IntEnum):
    """Spline order for :func:`resample_to`: ``LINEAR`` for intensities, ``NEAREST`` for label maps."""

    NEAREST = 0
    LINEAR = 1


def normalize_percentile(
    array: np.ndarray, lower: float = 1.0, upper: float = 99.0, mask: np.ndarray | None = None
) -> np.ndarray:
    """Map the ``lower``/``upper`` percentiles to 0/1 and clip to ``[0, 1]``.

    Args:
        array: image values, any shape.
        lower: percentile mapped to 0.
        upper: percentile mapped to 1.
        mask: optional boolean array of the same shape (e.g. ``array > 0`` for foreground); the
            percentiles are taken over the voxels inside it only. The whole array is rescaled.

    Returns:
        float32 array of the same shape with values in ``[0, 1]``. If the two percentiles coincide
        (e.g. a mostly-zero image), the full range ``[min, max]`` is used instead; a constant input
        gives zeros.
    """
    array = np.asarray(array, dtype=np.float32)
    lo, hi = _percentile_range(array, lower, upper, mask)
    if hi <= lo:
        return np.zeros_like(array)
    return np.clip((array - lo) / (hi - lo), 0.0, 1.0).astype(np.float32)


def _percentile_range(
    array: np.ndarray, lower: float, upper: float, mask: np.ndarray | None
) -> tuple[float, float]:
    """The values :func:`normalize_percentile` maps to 0 and 1 (equal for a constant image)."""
    if not 0.0 <= lower < upper <= 100.0:
        raise ValueError(f"need 0 <= lower < upper <= 100, got lower={lower}, upper={upper}")
    values = array
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != array.shape:
            raise ValueError(f"mask shape {mask.shape} differs from array shape {array.shape}")
        if mask.any():
            values = array[mask]
    lo, hi = np.percentile(values, [lower, upper])
    if hi <= lo:
        lo, hi = float(values.min()), float(values.max())
    return float(lo), float(hi)


# CT in Hounsfield units mapped by a soft-tissue curve instead of its percentiles, which put air (-1000 HU)
# at 0 and bone (about +1200) at 1 and leave the brain's grey/white contrast (about 11 HU) 0.005 of the range.
# Piecewise linear through these (HU, value) knots, clipped: soft tissue (-100 to 100 HU) gets 0.7 of the
# range while fat stays apart from air and bone from soft tissue (benchmarks/RESULTS.md sections 2h, 32).
HU_CURVE_KNOTS: tuple[tuple[float, float], ...] = ((-1000.0, 0.0), (-100.0, 0.2), (100.0, 0.9), (1500.0, 1.0))
# An image whose 1st percentile is at or below this is taken to be CT in HU (air); MR is never negative.
HU_AIR_LEVEL = -500.0


def looks_like_hu(array: np.ndarray) -> bool:
    """Whether ``array`` looks like CT in Hounsfield units: its 1st percentile at or below :data:`HU_AIR_LEVEL`."""
    values = np.asarray(array, dtype=np.float32)
    # The minimum bounds the percentile from below: an image without values that low (every MR image) is
    # decided without sorting it (0.1 s for a 1 mm head volume, which its own percentiles then repeat).
    return bool(values.min() <= HU_AIR_LEVEL and np.percentile(values, 1.0) <= HU_AIR_LEVEL)


def normalize_intensity(array: np.ndarray, mask: np.ndarray | None = None, hu_curve: bool = False) -> np.ndarray:
    """A registration input in ``[0, 1]``: :func:`normalize_percentile` (percentiles from inside ``mask``),
    or, with ``hu_curve`` and an image that :func:`looks_like_hu` (the whole image: a mask does not make CT
    something else), the soft-tissue curve :data:`HU_CURVE_KNOTS`, the same fixed mapping for every CT, whatever
    its field of view or mask. float32, same shape."""
    if hu_curve and looks_like_hu(array):
        return hu_curve_map(array)
    return normalize_percentile(array, mask=mask)


def hu_curve_map(array: np.ndarray) -> np.ndarray:
    """The soft-tissue curve :data:`HU_CURVE_KNOTS` applied to values in HU, without asking whether they are
    (callers that have not decided use :func:`normalize_intensity`). float32, same shape."""
    hu, value = np.array(HU_CURVE_KNOTS).T
    return np.interp(np.asarray(array, dtype=np.float32), hu, value).astype(np.float32)


def denormalize_intensity(
    values: np.ndarray, reference: np.ndarray, mask: np.ndarray | None = None, hu_curve: bool = False
) -> np.ndarray:
    """The inverse of :func:`normalize_intensity` for ``reference``: ``values`` in ``[0, 1]`` (e.g. an image
    translated into the reference's contrast) put into the reference's units. Percentiles 1/99 of the reference
    (inside ``mask``) go back to their values, linearly, without clipping; the soft-tissue curve, which rises
    strictly, is inverted knot by knot (HU for CT). float32, the shape of ``values``."""
    values = np.asarray(values, dtype=np.float32)
    if hu_curve and looks_like_hu(reference):
        hu, value = np.array(HU_CURVE_KNOTS).T
        return np.interp(values, value, hu).astype(np.float32)
    lo, hi = _percentile_range(np.asarray(reference, dtype=np.float32), 1.0, 99.0, mask)
    return (lo + values * (hi - lo)).astype(np.float32)


def background_value(array: np.ndarray) -> float:
    """What points outside an image's grid read when it is resampled or warped: air (the curve's lowest knot,
    -1000 HU) for an image that :func:`looks_like_hu`, where 0 would be water, else 0."""
    return HU_CURVE_KNOTS[0][0] if looks_like_hu(array) else 0.0


def bias_field(shape: Sequence[int], coefficients: np.ndarray, window: Sequence[slice] | None = None) -> np.ndarray:
    """A smooth multiplicative bias field of ``shape``: ``exp`` of a polynomial of degree 2 in coordinates
    normalised to [-1, 1], ``coefficients`` for the linear then the quadratic terms (as
    :func:`random_bias_coefficients` draws them). With ``window`` (one slice per axis) only that part of the
    field is computed, ``bias_field(shape, c)[window]`` without the rest (a crop of a large volume)."""
    window = window or [slice(None)] * len(shape)
    coords = np.meshgrid(*[np.linspace(-1, 1, s)[w] for s, w in zip(shape, window)], indexing="ij")
    terms = list(coords) + [a * b for i, a in enumerate(coords) for b in coords[i:]]
    return np.exp(sum(c * t for c, t in zip(coefficients, terms))).astype(np.float32)


def random_bias_coefficients(dim: int, strength: float, rng: np.random.Generator) -> np.ndarray:
    """Coefficients of a random :func:`bias_field` in ``dim`` dimensions, each uniform in ``[-strength, strength]``."""
    return rng.uniform(-strength, strength, dim + dim * (dim + 1) // 2)


def _same_grid(a: Image, b: Image, atol: float = 1e-4) -> bool:
    return a.shape == b.shape and np.allclose(a.affine, b.affine, atol=atol)


def resample_to(image: Image, reference: Image, order: Interpolation | int = Interpolation.LINEAR) -> Image:
    """Resample ``image`` onto the grid of ``reference`` through their voxel-to-world affines.

    Points of the reference grid that fall outside ``image`` read 0 (intensities: :func:`background_value`, air
    for CT in HU). 2D images are resampled in their plane (the through-plane offset between the two slices is
    ignored).

    Args:
        image: the image to resample (intensities or labels).
        reference: the image whose grid (shape and affine) the result lives on.
        order: ``Interpolation.LINEAR`` (1) for intensities, ``Interpolation.NEAREST`` (0) for labels.

    Returns:
        A new :class:`Image` with the reference's shape, affine and header and the input's dtype.
    """
    order = Interpolation(order)
    if image.dim != reference.dim:
        raise ValueError(f"cannot resample a {image.dim}D image ({image.name}) onto a {reference.dim}D grid")
    if _same_grid(image, reference):
        return Image(image.array.copy(), reference.affine, reference.header, image.path)
    dim = image.dim
    # reference voxel -> world -> image voxel, restricted to the image's own axes.
    voxel_map = np.linalg.solve(image.affine, reference.affine)
    matrix, offset = voxel_map[:dim, :dim], voxel_map[:dim, 3]
    out = ndimage.affine_transform(
        image.array.astype(np.float32) if order == Interpolation.LINEAR else image.array,
        matrix,
        offset=offset,
        output_shape=reference.shape,
        order=int(order),
        mode="constant",
        cval=background_value(image.array) if order == Interpolation.LINEAR else 0.0,
        prefilter=False,
    )
    return Image(out.astype(image.array.dtype), reference.affine, reference.header, image.path)
