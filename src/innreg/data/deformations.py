"""Random smooth deformations (affine + diffeomorphic elastic) for phantoms and augmentation.

Every field returned here is a displacement ``ddf`` of shape ``(dim, *spatial)`` in the convention of
:mod:`innreg.core.warp` (pull-back, voxel units, channel k = spatial axis k): deforming an image means
``warp(image, ddf)``, i.e. ``deformed(x) = image(x + ddf(x))``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from scipy import ndimage
from torch import Tensor

from innreg.core.affine import affine_ddf
from innreg.core.warp import InterpMode, compose, integrate_velocity, warp

RngLike = np.random.Generator | int | None


@dataclass
class DeformationParams:
    """Ranges of :func:`random_deformation`; every value is drawn uniformly in its range.

    Attributes:
        rotation_deg: rotation angle in ``[-r, r]`` degrees (about each axis in 3D).
        scale: ``(low, high)`` scaling factor per axis.
        shear: shear coefficients in ``[-s, s]``.
        translation: shift in ``[-t, t]`` times the axis length.
        elastic_magnitude_vox: RMS of the elastic velocity field in voxels on an image whose largest
            side is ``reference_size``; scaled linearly with the largest side of the actual image.
            0 disables the elastic part.
        elastic_smoothness_vox: Gaussian smoothing (sigma, voxels) of the elastic velocity at
            ``reference_size``; scaled like the magnitude.
        reference_size: image size the two elastic values refer to.
        int_steps: scaling-and-squaring steps integrating the elastic velocity.
    """

    rotation_deg: float = 10.0
    scale: tuple[float, float] = (0.9, 1.1)
    shear: float = 0.05
    translation: float = 0.05
    elastic_magnitude_vox: float = 3.0
    elastic_smoothness_vox: float = 12.0
    reference_size: int = 192
    int_steps: int = 7

    def __post_init__(self) -> None:
        if not 0 < self.scale[0] <= self.scale[1]:
            raise ValueError(f"scale range must satisfy 0 < low <= high, got {self.scale}")
        for name in ("rotation_deg", "shear", "translation", "elastic_magnitude_vox"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.elastic_smoothness_vox <= 0 or self.reference_size <= 0:
            raise ValueError("elastic_smoothness_vox and reference_size must be > 0")


def as_rng(rng: RngLike) -> np.random.Generator:
    """A numpy Generator from a Generator, a seed or ``None`` (fresh entropy)."""
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


def _rotation(angles_rad: Sequence[float]) -> np.ndarray:
    """2D rotation from one angle; 3D rotation ``Rz @ Ry @ Rx`` from three angles."""
    if len(angles_rad) == 1:
        c, s = np.cos(angles_rad[0]), np.sin(angles_rad[0])
        return np.array([[c, -s], [s, c]])
    rot = np.eye(3)
    for axis, angle in enumerate(angles_rad):
        c, s = np.cos(angle), np.sin(angle)
        i, j = [k for k in range(3) if k != axis]
        r = np.eye(3)
        r[i, i], r[i, j], r[j, i], r[j, j] = c, -s, s, c
        rot = r @ rot
    return rot


def affine_field(shape: Sequence[int], matrix: np.ndarray, translation_vox: Sequence[float]) -> Tensor:
    """Displacement of the map ``x -> A (x - c) + c + t`` with ``c`` the grid centre, from numpy parameters
    (front end of :func:`innreg.core.affine.affine_ddf`).

    Args:
        shape: spatial shape (2 or 3 entries).
        matrix: ``(dim, dim)`` linear part ``A`` in voxel coordinates.
        translation_vox: ``t`` in voxels, one entry per axis.

    Returns:
        float32 ``(dim, *shape)`` ddf.
    """
    # float64 so that the simulated ground truth carries no float32 rounding of the large grid coordinates.
    matrix64 = torch.as_tensor(np.asarray(matrix), dtype=torch.float64).unsqueeze(0)
    translation64 = torch.as_tensor(np.asarray(translation_vox, dtype=np.float64)).view(1, -1)
    return affine_ddf(matrix64, translation64, tuple(shape))[0].float()


def random_affine_field(
    shape: Sequence[int],
    rotation_deg: float,
    scale: tuple[float, float],
    shear: float,
    translation_vox: float | Sequence[float],
    rng: RngLike = None,
    spacing: Sequence[float] | None = None,
) -> Tensor:
    """Random affine about the grid centre, as a pull-back ddf.

    Args:
        shape: spatial shape ``S`` (2D or 3D).
        rotation_deg: angles drawn in ``[-r, r]`` (one in 2D, one per axis in 3D).
        scale: ``(low, high)`` range of the per-axis scale factors.
        shear: off-diagonal shear coefficients drawn in ``[-s, s]``.
        translation_vox: shift drawn in ``[-t, t]`` voxels (a number, or one per axis).
        rng: numpy Generator or seed.
        spacing: voxel size per axis; when given, rotation and shear act in physical space, so they
            stay rigid on anisotropic grids.

    Returns:
        float32 ``(dim, *S)`` ddf.
    """
    rng = as_rng(rng)
    dim = len(shape)
    if dim not in (2, 3):
        raise ValueError(f"shape must be 2D or 3D, got {tuple(shape)}")
    n_angles = 1 if dim == 2 else 3
    rot = _rotation(np.deg2rad(rng.uniform(-rotation_deg, rotation_deg, n_angles)))
    zoom = np.diag(rng.uniform(scale[0], scale[1], dim))
    shear_m = np.eye(dim)
    upper = np.triu_indices(dim, k=1)
    shear_m[upper] = rng.uniform(-shear, shear, len(upper[0]))
    physical = rot @ shear_m @ zoom
    s = np.diag(np.ones(dim) if spacing is None else np.asarray(spacing, dtype=np.float64))
    matrix = np.linalg.inv(s) @ physical @ s
    t_max = np.broadcast_to(np.asarray(translation_vox, dtype=np.float64), (dim,))
    return affine_field(shape, matrix, rng.uniform(-t_max, t_max))


def random_elastic_field(
    shape: Sequence[int],
    magnitude_vox: float,
    smoothness_vox: float,
    rng: RngLike = None,
    int_steps: int = 7,
) -> Tensor:
    """Random diffeomorphic deformation: smoothed white-noise velocity, integrated by scaling and squaring.

    Args:
        shape: spatial shape ``S``.
        magnitude_vox: RMS of the velocity field (voxels) after smoothing.
        smoothness_vox: Gaussian sigma (voxels) of the smoothing.
        rng: numpy Generator or seed.
        int_steps: scaling-and-squaring steps (:func:`innreg.core.warp.integrate_velocity`).

    Returns:
        float32 ``(dim, *S)`` ddf.
    """
    rng = as_rng(rng)
    dim = len(shape)
    if magnitude_vox == 0:
        return torch.zeros(dim, *shape)
    noise = rng.standard_normal((dim, *shape)).astype(np.float32)
    velocity = np.stack([ndimage.gaussian_filter(c, smoothness_vox, mode="reflect") for c in noise])
    velocity *= magnitude_vox / max(float(np.sqrt(np.mean(velocity**2))), 1e-12)
    return integrate_velocity(torch.from_numpy(velocity)[None], steps=int_steps)[0]


def random_deformation(shape: Sequence[int], params: DeformationParams | None = None, rng: RngLike = None) -> Tensor:
    """Random affine followed by a random elastic deformation, as one pull-back ddf.

    A point ``x`` of the output grid is mapped by the affine to ``a(x)`` and then displaced by the
    elastic field there: ``ddf = compose(elastic, affine)``.

    Args:
        shape: spatial shape ``S``.
        params: the ranges (default :class:`DeformationParams`).
        rng: numpy Generator or seed.

    Returns:
        float32 ``(dim, *S)`` ddf.
    """
    params = params or DeformationParams()
    rng = as_rng(rng)
    size_factor = max(shape) / params.reference_size
    affine = random_affine_field(
        shape,
        params.rotation_deg,
        params.scale,
        params.shear,
        [params.translation * s for s in shape],
        rng,
    )
    elastic = random_elastic_field(
        shape,
        params.elastic_magnitude_vox * size_factor,
        params.elastic_smoothness_vox * size_factor,
        rng,
        params.int_steps,
    )
    return compose(elastic[None], affine[None])[0]


def apply_deformation(
    image: Tensor, labels: Tensor | None, ddf: Tensor
) -> tuple[Tensor, Tensor | None]:
    """Deform an image (bilinear) and optionally its label map (nearest) with one ddf.

    Args:
        image: ``(C, *S)`` or ``(N, C, *S)`` float tensor.
        labels: ``None`` or an integer tensor laid out like ``image`` (usually ``C = 1``).
        ddf: ``(dim, *S)`` or ``(N, dim, *S)`` pull-back displacement in voxels.

    Returns:
        ``(warped image, warped labels or None)`` with the input layouts.
    """
    batched = ddf.dim() in (4, 5) and ddf.shape[1] == ddf.dim() - 2
    if not batched and not (ddf.dim() in (3, 4) and ddf.shape[0] == ddf.dim() - 1):
        raise ValueError(f"ddf must be (dim, *S) or (N, dim, *S), got {tuple(ddf.shape)}")
    if image.dim() != ddf.dim():
        raise ValueError(f"image {tuple(image.shape)} and ddf {tuple(ddf.shape)} must both be batched or not")
    field = ddf if batched else ddf[None]

    def _warp(x: Tensor, mode: InterpMode) -> Tensor:
        out = warp(x if batched else x[None], field.to(torch.float32), mode=mode)
        return out if batched else out[0]

    warped = _warp(image, InterpMode.BILINEAR)
    warped_labels = None if labels is None else _warp(labels, InterpMode.NEAREST)
    return warped, warped_labels
