"""The ICBM152 2009 template (shipped with nilearn), the head geometry built around it, and grids.

Everything here lives in the template's world frame (MNI, RAS, mm) and is computed once per process:

* the 1 mm skull-stripped T1 and the GM, WM and brain-mask probability maps
  (``nilearn.datasets.load_mni152_*``; they ship inside nilearn, nothing is downloaded);
* two distance maps (mm outside, negative inside) on a 2 mm grid padded around the brain: to the
  brain's smoothed outline (skull and scalp shells are built on it) and to the face-and-neck block
  (a head needs a face and a neck below the brain; the template has neither).

Per case, :func:`sample_anatomy` reads all channels at arbitrary world points, so the subject
deformation, the slice position and the through-plane offsets of thick slices all come from one
trilinear lookup.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage
from torch import Tensor


class SliceAxis(str, Enum):
    """Orientation of 2D phantom slices."""

    AXIAL = "axial"
    CORONAL = "coronal"
    SAGITTAL = "sagittal"


# Face and neck block (MNI mm): an ellipsoid holding the orbits, nose and maxilla, and an elliptic
# cylinder under the brain for the neck. Rough adult dimensions placed against the ICBM152 brain.
FACE_CENTRE, FACE_RADII = np.array([0.0, 35.0, -55.0]), np.array([62.0, 45.0, 42.0])
NECK_CENTRE_XY, NECK_RADII_XY, NECK_TOP_Z = np.array([0.0, -22.0]), np.array([50.0, 55.0]), -30.0
_HEAD_GRID_MM = 2.0
_HEAD_PAD_MM = np.array([[40.0, 40.0], [40.0, 40.0], [80.0, 40.0]])  # (low, high) per world axis x, y, z
HEAD_MARGIN_MM = 26.0  # brain outline to skin surface, upper bound of the sum of shell thicknesses
NECK_SHOWN_MM = 45.0  # how far below the brain a whole-head grid reaches


@dataclass(frozen=True)
class Template:
    """Template channels and head geometry.

    Attributes:
        channels: float32 tensor ``(4, X, Y, Z)`` T1, GM, WM, brain mask, cropped around the brain (1 mm).
        affine: voxel -> world (mm) of ``channels``.
        brain_lo, brain_hi: world bounding box of the brain mask (mm).
        wm_t1: median template T1 in white matter (probability > 0.9), the T1 reference level.
        distances: float32 tensor ``(2, X', Y', Z')`` signed distances (mm) to the brain outline and to
            the face-and-neck block, on a 2 mm padded grid.
        distances_affine: voxel -> world (mm) of ``distances``.
    """

    channels: Tensor
    affine: np.ndarray
    brain_lo: np.ndarray
    brain_hi: np.ndarray
    wm_t1: float
    distances: Tensor
    distances_affine: np.ndarray


def _signed_distance(inside: np.ndarray, spacing: float) -> np.ndarray:
    """Distance (mm) outside a mask, ``-spacing`` inside it.

    Only the sign is used inside (brain or face), so the inner distance transform is skipped; the
    constant keeps the zero crossing of the trilinear interpolation half-way between voxel centres.
    """
    return np.where(inside, -spacing, ndimage.distance_transform_edt(~inside, sampling=spacing)).astype(np.float32)


def _head_distances(mask: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distance maps of the brain outline and the face-and-neck block on a padded 2 mm grid."""
    step = int(round(_HEAD_GRID_MM / affine[0, 0]))
    # The skull follows the brain's envelope, not its sulci: smooth (3 mm) before thresholding.
    smooth = ndimage.gaussian_filter(mask.astype(np.float32), 3.0 / affine[0, 0])
    coarse = smooth[::step, ::step, ::step] > 0.5
    pad = np.round(_HEAD_PAD_MM / _HEAD_GRID_MM).astype(int)
    brain = np.pad(coarse, pad)
    grid_affine = affine.copy()
    grid_affine[:3, :3] = affine[:3, :3] * step
    grid_affine[:3, 3] = affine[:3, 3] - grid_affine[:3, :3] @ pad[:, 0]
    index = np.indices(brain.shape, dtype=np.float32).reshape(3, -1)
    world = (grid_affine[:3, :3] @ index + grid_affine[:3, 3:]).reshape(3, *brain.shape)
    face = (((world - FACE_CENTRE.reshape(3, 1, 1, 1)) / FACE_RADII.reshape(3, 1, 1, 1)) ** 2).sum(0) < 1
    neck_xy = (((world[:2] - NECK_CENTRE_XY.reshape(2, 1, 1, 1)) / NECK_RADII_XY.reshape(2, 1, 1, 1)) ** 2).sum(0)
    neck = (neck_xy < 1) & (world[2] < NECK_TOP_Z)
    distances = np.stack([_signed_distance(brain, _HEAD_GRID_MM), _signed_distance(face | neck, _HEAD_GRID_MM)])
    return distances, grid_affine


@functools.cache
def load_template() -> Template:
    """Load the ICBM152 2009 template, tissue maps and head geometry once per process."""
    from nilearn import datasets

    t1_img = datasets.load_mni152_template(resolution=1)
    maps = [
        t1_img,
        datasets.load_mni152_gm_template(resolution=1),
        datasets.load_mni152_wm_template(resolution=1),
        datasets.load_mni152_brain_mask(resolution=1),
    ]
    channels = np.stack([m.get_fdata(dtype=np.float32) for m in maps])
    mask = channels[3] > 0.5
    affine = np.asarray(t1_img.affine, dtype=np.float64)
    distances, distances_affine = _head_distances(mask, affine)
    idx = np.argwhere(mask)
    lo, hi = idx.min(0), idx.max(0)
    margin = 4
    start = np.maximum(lo - margin, 0)
    stop = np.minimum(hi + margin + 1, mask.shape)
    crop = tuple(slice(a, b) for a, b in zip(start, stop))
    channels = np.ascontiguousarray(channels[(slice(None), *crop)])
    channels[0] *= channels[3] > 0.5  # the T1 template is skull-stripped; drop residual values outside
    wm_t1 = float(np.median(channels[0][channels[2] > 0.9]))
    corners = affine[:3, :3] @ np.stack([lo, hi], axis=1) + affine[:3, 3:]  # world (mm), RAS template
    cropped = affine.copy()
    cropped[:3, 3] += affine[:3, :3] @ start
    return Template(
        torch.from_numpy(channels), cropped, corners.min(axis=1), corners.max(axis=1), wm_t1,
        torch.from_numpy(distances), distances_affine,
    )


# In-plane layout of 2D slices: (normal world axis, (row world axis, sign), (column world axis, sign)).
SLICE_LAYOUT = {
    SliceAxis.AXIAL: (2, (1, -1.0), (0, 1.0)),
    SliceAxis.CORONAL: (1, (2, -1.0), (0, 1.0)),
    SliceAxis.SAGITTAL: (0, (2, -1.0), (1, -1.0)),
}
_BRAIN_FOV_MARGIN = 1.15  # skull-stripped grids: extent relative to the brain's bounding box
_HEAD_FOV_MARGIN = 1.04  # whole-head grids: extent relative to the head's bounding box


def field_of_view(template: Template, whole_head: bool) -> tuple[np.ndarray, np.ndarray]:
    """World box ``(lo, hi)`` (mm) that a grid should show: the brain, or the head down to the upper neck."""
    lo, hi = template.brain_lo, template.brain_hi
    if not whole_head:
        centre, half = (hi + lo) / 2, (hi - lo) / 2 * _BRAIN_FOV_MARGIN
        return centre - half, centre + half
    lo = lo - HEAD_MARGIN_MM - np.array([0.0, 0.0, NECK_SHOWN_MM])
    hi = hi + HEAD_MARGIN_MM
    centre, half = (hi + lo) / 2, (hi - lo) / 2 * _HEAD_FOV_MARGIN
    return centre - half, centre + half


def grid_affine(
    size: Sequence[int],
    axis: SliceAxis,
    slice_fraction: float,
    template: Template,
    whole_head: bool,
    spacing: float | None = None,
) -> np.ndarray:
    """Voxel-to-world affine of a target grid with square/cubic voxels, centred on the field of view.

    The voxel size fits the field of view (:func:`field_of_view`) unless ``spacing`` (mm) is given.
    2D grids sit at ``slice_fraction`` of the brain's extent along the slice normal; their third
    column is the unit normal times the spacing.
    """
    lo, hi = field_of_view(template, whole_head)
    extent, centre = hi - lo, (hi + lo) / 2
    if len(size) == 2:
        normal, (row_ax, row_sign), (col_ax, col_sign) = SLICE_LAYOUT[axis]
        directions = np.zeros((3, 3))
        directions[row_ax, 0], directions[col_ax, 1], directions[normal, 2] = row_sign, col_sign, 1.0
        fitted = max(extent[row_ax] / size[0], extent[col_ax] / size[1])
        brain = template.brain_hi - template.brain_lo
        centre[normal] = template.brain_lo[normal] + slice_fraction * brain[normal]
        half = np.array([(size[0] - 1) / 2, (size[1] - 1) / 2, 0.0])
    else:
        directions = np.eye(3)
        fitted = max(extent[k] / size[k] for k in range(3))
        half = (np.asarray(size, dtype=np.float64) - 1) / 2
    affine = np.eye(4)
    affine[:3, :3] = directions * (spacing or fitted)
    affine[:3, 3] = centre - affine[:3, :3] @ half
    return affine


def world_points(affine: np.ndarray, ddf: np.ndarray | None, offsets_mm: Sequence[float] = (0.0,)) -> np.ndarray:
    """World coordinates (mm) of grid points ``x + ddf(x)``, shifted along a 2D grid's normal.

    Args:
        affine: grid voxel-to-world matrix (2D grids: third column = normal * spacing).
        ddf: ``(dim, *S)`` displacement in voxels (the subject deformation) or ``None``; its shape gives ``S``.
        offsets_mm: through-plane offsets (2D only; 3D grids take ``(0,)``).

    Returns:
        float64 ``(len(offsets), 3, *S)``.
    """
    dim, shape = ddf.shape[0], ddf.shape[1:]
    index = np.stack(np.meshgrid(*[np.arange(s, dtype=np.float64) for s in shape], indexing="ij")) + ddf
    base = np.einsum("ij,j...->i...", affine[:3, :dim], index) + affine[:3, 3].reshape(3, *([1] * dim))
    normal = affine[:3, 2] / np.linalg.norm(affine[:3, 2])
    return np.stack([base + o * normal.reshape(3, *([1] * dim)) for o in offsets_mm])


def _grid_sample(volumes: Tensor, affine: np.ndarray, points: np.ndarray, padding: str) -> np.ndarray:
    """Trilinear samples of ``(C, X, Y, Z)`` volumes at world points ``(3, *S)``: ``(C, *S)``."""
    inv = np.linalg.inv(affine)
    flat = points.reshape(3, -1)
    index = inv[:3, :3] @ flat + inv[:3, 3:]
    size = np.asarray(volumes.shape[1:], dtype=np.float64).reshape(3, 1)
    normalised = 2 * index / (size - 1) - 1  # align_corners=True; grid_sample wants (z, y, x) order last
    grid = torch.from_numpy(normalised[::-1].T.astype(np.float32).copy()).view(1, 1, 1, -1, 3)
    out = F.grid_sample(volumes[None], grid, mode="bilinear", padding_mode=padding, align_corners=True)
    return out[0, :, 0, 0].numpy().reshape(volumes.shape[0], *points.shape[1:])


def sample_anatomy(points: np.ndarray, template: Template, whole_head: bool) -> np.ndarray:
    """Trilinear samples at world points ``(3, *S)``: float32 ``(C, *S)``.

    Channels: T1, GM, WM, brain mask (0 outside the template), then for whole heads the brain and
    face-and-neck signed distances (mm; constant extrapolation beyond the padded grid).
    """
    out = [_grid_sample(template.channels, template.affine, points, "zeros")]
    if whole_head:
        out.append(_grid_sample(template.distances, template.distances_affine, points, "border"))
    return np.concatenate(out)
