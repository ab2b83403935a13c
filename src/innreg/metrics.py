"""Evaluation metrics: Dice, HD95 (mm), Jacobian determinant and folding, NCC and SSIM of images.

Every metric here is the single implementation used by evaluation, baselines and benchmarks.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import torch
from scipy import ndimage
from torch import Tensor

from innreg.core.jacobian import jacobian_determinant

# Label maps and fields may come as numpy arrays or torch tensors.
ArrayLike = np.ndarray | Tensor


def _to_numpy(x: ArrayLike) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, Tensor) else np.asarray(x)


def _label_pair(
    pred: ArrayLike, target: ArrayLike, labels: Iterable[int] | None
) -> tuple[np.ndarray, np.ndarray, list[int]]:
    pred, target = _to_numpy(pred), _to_numpy(target)
    if pred.shape != target.shape:
        raise ValueError(f"label maps must have the same shape, got {pred.shape} and {target.shape}")
    if labels is None:
        labels = [int(v) for v in np.unique(target) if v != 0]
    return pred, target, [int(v) for v in labels]


def dice_per_label(pred: ArrayLike, target: ArrayLike, labels: Iterable[int] | None = None) -> dict[int, float]:
    """Dice overlap ``2 |P n T| / (|P| + |T|)`` of each label of two integer label maps.

    Args:
        pred: label map of any shape (numpy or torch).
        target: reference label map, same shape.
        labels: labels to score; default: the non-zero labels present in ``target``.

    Returns:
        ``{label: dice}``; a requested label absent from both maps scores ``nan`` (undefined, skipped by
        :func:`mean_ignore_nan`).
    """
    pred, target, labels = _label_pair(pred, target, labels)
    scores = {}
    for label in labels:
        p, t = pred == label, target == label
        total = int(p.sum()) + int(t.sum())
        scores[label] = 2.0 * int(np.logical_and(p, t).sum()) / total if total else float("nan")
    return scores


def _surface(mask: np.ndarray) -> np.ndarray:
    # Voxels of the mask with a face-neighbour outside it (or on the image border).
    return mask & ~ndimage.binary_erosion(mask, border_value=0)


def hd95_per_label(
    pred: ArrayLike,
    target: ArrayLike,
    spacing: Sequence[float],
    labels: Iterable[int] | None = None,
) -> dict[int, float]:
    """95th-percentile Hausdorff distance in mm between the surfaces of each label.

    Definition (the same as MONAI's ``HausdorffDistanceMetric(percentile=95)`` with ``spacing``): the
    surface of a mask is the mask minus its binary erosion (face connectivity, outside the image counts
    as background); for every surface voxel of one mask the Euclidean distance in mm to the nearest
    surface voxel of the other (``scipy.ndimage.distance_transform_edt`` with ``sampling=spacing``);
    the 95th percentile (numpy's linear interpolation) of each directed set; HD95 is the larger of the
    two directed values (not the percentile of the pooled distances).

    Args:
        pred: label map (numpy or torch).
        target: reference label map, same shape.
        spacing: voxel size in mm along each axis of the maps.
        labels: labels to score; default: the non-zero labels present in ``target``.

    Returns:
        ``{label: hd95_mm}``; a label present in one map only scores the grid's diagonal in mm (the
        largest distance the grid holds: a lost structure must not drop out of a mean, where it would
        make the method look better); ``nan`` only for a label absent from both.
    """
    pred, target, labels = _label_pair(pred, target, labels)
    spacing = tuple(float(s) for s in spacing)
    if len(spacing) != pred.ndim:
        raise ValueError(f"spacing has {len(spacing)} values for {pred.ndim}D label maps")
    diagonal = float(np.sqrt(sum(((n - 1) * s) ** 2 for n, s in zip(pred.shape, spacing))))
    scores = {}
    for label in labels:
        p, t = pred == label, target == label
        if not p.any() or not t.any():
            scores[label] = diagonal if p.any() or t.any() else float("nan")
            continue
        # Cropping to the union's bounding box changes no surface voxel and no distance, only the cost.
        box = tuple(slice(c.min(), c.max() + 1) for c in np.nonzero(p | t))
        surf_p, surf_t = _surface(p[box]), _surface(t[box])
        to_t = ndimage.distance_transform_edt(~surf_t, sampling=spacing)[surf_p]
        to_p = ndimage.distance_transform_edt(~surf_p, sampling=spacing)[surf_t]
        scores[label] = float(max(np.percentile(to_t, 95), np.percentile(to_p, 95)))
    return scores


def neg_jacobian_fraction(ddf: ArrayLike) -> float:
    """Fraction (0..1) of voxels where the Jacobian determinant of ``x -> x + ddf(x)`` is <= 0.

    Args:
        ddf: one displacement field, ``(dim, *spatial)`` or ``(1, dim, *spatial)``, numpy or torch, in
            voxels (see :func:`jacobian_determinant` for the finite differences).
    """
    field = torch.as_tensor(_to_numpy(ddf), dtype=torch.float64)
    shape = tuple(field.shape)
    if field.dim() == field.shape[0] + 1 and field.shape[0] in (2, 3):
        field = field.unsqueeze(0)
    if field.dim() < 2 or field.shape[0] != 1 or field.shape[1] not in (2, 3) or field.dim() != field.shape[1] + 2:
        raise ValueError(f"expected one field of shape (dim, *spatial) or (1, dim, *spatial), got {shape}")
    return float((jacobian_determinant(field) <= 0).double().mean())


def mean_ignore_nan(values: Iterable[float] | dict[int, float]) -> float:
    """Mean of the finite values (``nan`` entries skipped); ``nan`` if there are none."""
    values = list(values.values()) if isinstance(values, dict) else list(values)
    arr = np.asarray(values, dtype=float)
    arr = arr[~np.isnan(arr)]
    return float(arr.mean()) if arr.size else float("nan")


def _masked_pair(a: ArrayLike, b: ArrayLike, mask: ArrayLike | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    a, b = _to_numpy(a).astype(np.float64), _to_numpy(b).astype(np.float64)
    if a.shape != b.shape:
        raise ValueError(f"images must have the same shape, got {a.shape} and {b.shape}")
    m = np.ones(a.shape, dtype=bool) if mask is None else _to_numpy(mask).astype(bool)
    if m.shape != a.shape:
        raise ValueError(f"mask shape {m.shape} differs from image shape {a.shape}")
    return a, b, m


def ncc(a: ArrayLike, b: ArrayLike, mask: ArrayLike | None = None) -> float:
    """Global normalised cross-correlation (Pearson correlation) of two images inside ``mask``.

    Args:
        a, b: images of the same shape (any dimension), numpy or torch.
        mask: boolean array of that shape; default: everywhere.

    Returns:
        A value in ``[-1, 1]``: 1 for ``b = s a + c`` with ``s > 0``; ``nan`` if the mask is empty or
        an image is constant inside it.
    """
    a, b, m = _masked_pair(a, b, mask)
    if not m.any():
        return float("nan")
    x, y = a[m] - a[m].mean(), b[m] - b[m].mean()
    denominator = np.sqrt((x**2).sum() * (y**2).sum())
    return float((x * y).sum() / denominator) if denominator > 0 else float("nan")


def ssim(
    a: ArrayLike, b: ArrayLike, mask: ArrayLike | None = None, data_range: float = 1.0, sigma: float = 1.5
) -> float:
    """Mean structural similarity (Wang et al., IEEE TIP 2004) of two images inside ``mask``.

    Local means, variances and covariance use a Gaussian window of ``sigma`` voxels (the paper's
    11x11 window, sigma 1.5) in 2D or 3D, with population statistics and ``C1 = (0.01 L)^2``,
    ``C2 = (0.03 L)^2`` for the data range ``L``; the SSIM map is averaged over the mask.

    Returns:
        1 for identical images; ``nan`` if the mask is empty.
    """
    a, b, m = _masked_pair(a, b, mask)
    if not m.any():
        return float("nan")
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2

    def smooth(x: np.ndarray) -> np.ndarray:
        return ndimage.gaussian_filter(x, sigma, mode="reflect", truncate=3.5)

    mu_a, mu_b = smooth(a), smooth(b)
    var_a = smooth(a * a) - mu_a**2
    var_b = smooth(b * b) - mu_b**2
    cov = smooth(a * b) - mu_a * mu_b
    ssim_map = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return float(ssim_map[m].mean())
