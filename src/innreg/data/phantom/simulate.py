"""One simulated registration pair: subject anatomy, two contrasts, acquisitions and the true field.

Pairs and ground truth: both images show the same subject. The moving image is the subject in its
own frame; the fixed image is the same subject moved by an independent rigid head motion and
deformed by :func:`~innreg.data.deformations.random_deformation`. The stored field ``ddf``
(``compose(deformation, motion)``) is exactly the registration answer, on the fixed grid in the
:mod:`innreg.core.warp` convention: ``warp(moving_seg, ddf, 'nearest') == fixed_seg`` and, before the
acquisition effects, ``warp(moving, ddf) == fixed`` when both have the same contrast.
``moving_as_fixed`` is the moving anatomy imaged in the fixed contrast (the fixed image's tissue
values) with the moving image's acquisition geometry (slices, resolution, field of view) but no
bias or noise: what a perfect translator of the moving image outputs.

Geometry: 2D slices with square pixels, rows running anterior -> posterior (axial) or superior ->
inferior (coronal, sagittal) and columns patient left -> right (axial, coronal) or anterior ->
posterior (sagittal), so ``imshow(array)`` shows anterior (or superior) up; 3D volumes in RAS axis
order with cubic voxels. The grid fits the head (or the brain, skull-stripped) unless a spacing is
given. The affine of every image records this geometry in mm.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from innreg.data.deformations import (
    DeformationParams,
    RngLike,
    apply_deformation,
    as_rng,
    random_affine_field,
    random_deformation,
)
from innreg.data.phantom.acquisition import (
    SKULL_STRIPPED_CONTRAST,
    Acquisition,
    ContrastParams,
    corrupt,
    cut_field_of_view,
    draw_acquisition,
    resolve,
    through_plane_weights,
)
from innreg.data.phantom.contrast import (
    PHANTOM_MODALITIES,
    Modality,
    TissueValues,
    clean_image,
    draw_tissue_values,
    sharpened,
    stored_image,
)
from innreg.data.phantom.head import HeadShape, Layers, head_labels, head_layers, random_head
from innreg.data.phantom.template import SliceAxis, grid_affine, load_template, sample_anatomy, world_points
from innreg.errors import InnregInputError
from innreg.core.warp import compose

# Subject-to-subject variation applied to the template anatomy (shared by both images of a pair).
ANATOMY_VARIATION = DeformationParams(
    rotation_deg=4.0, scale=(0.94, 1.06), shear=0.03, translation=0.02, elastic_magnitude_vox=2.0
)
MIN_SIZE = 16
# At most 256**3 voxels: a pair's simulation holds a few dozen float arrays of the grid (a 256**3 pair needs
# several GB); a larger size ended in an out-of-memory traceback instead of a one-line error.
MAX_VOXELS = 256**3
_SUB_SLICES_MM = (-2.0, -1.0, 0.0, 1.0, 2.0)  # through-plane samples of a 2D slice up to 5 mm thick


@dataclass
class MotionParams:
    """Independent rigid head motion between the two acquisitions of a pair (uniform draws).

    Attributes:
        rotation_deg: rotation in ``[-r, r]`` degrees (in-plane for 2D, about each axis in 3D).
        translation_mm: shift in ``[-t, t]`` mm along each grid axis.
    """

    rotation_deg: float = 4.0
    translation_mm: float = 4.0

    def __post_init__(self) -> None:
        for name in ("rotation_deg", "translation_mm"):
            if not getattr(self, name) >= 0:  # also refuses NaN
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")


@dataclass
class PhantomPair:
    """One simulated pair on a common grid.

    Attributes:
        moving: float32 ``S`` moving image (the subject in its own frame, ``moving_modality``).
        fixed: float32 ``S`` fixed image (the moved and deformed subject, ``fixed_modality``).
        moving_seg: int64 ``S`` brain labels of ``moving`` (0 outside the brain, 1 CSF, 2 GM, 3 WM).
        fixed_seg: int64 ``S`` brain labels of ``fixed`` (``warp(moving_seg, ddf, 'nearest')``).
        ddf: float32 ``(dim, *S)`` true registration field, pull-back, voxels, on the fixed grid.
        affine: 4x4 voxel-to-world (mm) matrix shared by both images.
        moving_modality, fixed_modality: contrast names.
        moving_as_fixed: float32 ``S`` the moving anatomy in the fixed contrast (module docstring).
        moving_head_labels, fixed_head_labels: uint8 ``S`` non-brain classes
            (:class:`~innreg.data.phantom.head.HeadLabel`), ``None`` for skull-stripped pairs.
    """

    moving: np.ndarray
    fixed: np.ndarray
    moving_seg: np.ndarray
    fixed_seg: np.ndarray
    ddf: np.ndarray
    affine: np.ndarray
    moving_modality: str
    fixed_modality: str
    moving_as_fixed: np.ndarray | None = None
    moving_head_labels: np.ndarray | None = None
    fixed_head_labels: np.ndarray | None = None
    spacing: tuple[float, ...] = field(init=False)

    def __post_init__(self) -> None:
        dim = self.moving.ndim
        self.spacing = tuple(float(v) for v in np.linalg.norm(self.affine[:3, :dim], axis=0))


def check_size(dim: int, size: Sequence[int]) -> tuple[int, ...]:
    """The size as a tuple, or a one-line error."""
    if dim not in (2, 3):
        raise InnregInputError(f"dim={dim}: phantoms are 2D or 3D")
    size = tuple(int(s) for s in size)
    if len(size) != dim or min(size) < MIN_SIZE:
        raise InnregInputError(f"size={size}: need {dim} sizes of at least {MIN_SIZE} voxels for dim={dim}")
    if math.prod(size) > MAX_VOXELS:
        raise InnregInputError(f"size={size}: at most {MAX_VOXELS} voxels (e.g. 256x256x256 or 4096x4096)")
    return size


def modality(name: str, role: str) -> Modality:
    """The :class:`Modality` called ``name``, or a one-line error naming the option."""
    try:
        return Modality(str(name).lower())
    except ValueError:
        choices = ", ".join(PHANTOM_MODALITIES)
        raise InnregInputError(f"{role}={name!r}: unknown modality, choose from {choices}") from None


def _tissue_probabilities(gm: np.ndarray, wm: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``(3, *S)`` CSF, GM, WM probabilities; CSF is the brain mask minus GM and WM."""
    mask = np.clip(mask, 0.0, 1.0)
    gm, wm = np.minimum(np.clip(gm, 0, 1), mask), np.minimum(np.clip(wm, 0, 1), mask)
    csf = np.clip(mask - gm - wm, 0.0, 1.0)
    return np.stack([csf, gm, wm])


@dataclass
class _SubSlice:
    """The subject's anatomy at one through-plane offset (3D: the only one)."""

    t1: np.ndarray
    fractions: np.ndarray
    head: np.ndarray | None
    seg: np.ndarray


def _anatomy(points: np.ndarray, head_shape: HeadShape | None, layers: Layers | None) -> _SubSlice:
    """Brain fractions and labels and head labels at world points (no head when ``head_shape`` is None)."""
    channels = sample_anatomy(points, load_template(), head_shape is not None)
    t1, gm, wm, mask = channels[:4]
    probabilities = _tissue_probabilities(gm, wm, mask)
    seg = np.where(mask >= 0.5, probabilities.argmax(0) + 1, 0).astype(np.int64)
    head = None if head_shape is None else head_labels(points, mask, channels[4], channels[5], head_shape, layers)
    return _SubSlice(t1, sharpened(probabilities), head, seg)


def _image(mod: Modality, values: TissueValues, sub_slices: dict[int, _SubSlice], weights: np.ndarray) -> np.ndarray:
    """Clean image averaged over the sub-slices with non-zero weight."""
    wm_t1 = load_template().wm_t1
    return sum(
        w * clean_image(mod, values, sub_slices[k].t1, sub_slices[k].fractions, sub_slices[k].head, wm_t1)
        for k, w in enumerate(weights) if w > 0
    )


def _margins(foreground: np.ndarray) -> list[tuple[int, int]]:
    """Per axis, the empty voxels between each border and the foreground."""
    out = []
    for axis in range(foreground.ndim):
        occupied = np.flatnonzero(foreground.any(axis=tuple(k for k in range(foreground.ndim) if k != axis)))
        n = foreground.shape[axis]
        out.append((int(occupied[0]), int(n - 1 - occupied[-1])) if occupied.size else (n // 2, n // 2))
    return out


def _acquire(clean: np.ndarray, acq: Acquisition, mod: Modality, seg: np.ndarray, rng) -> np.ndarray:
    resolved = resolve(clean, acq)
    level = float(resolved[seg > 0].mean()) if (seg > 0).any() else float(resolved.mean())
    return stored_image(mod, cut_field_of_view(corrupt(resolved, acq, mod, level, rng), acq))


def make_phantom_pair(
    moving: str = "t2",
    fixed: str = "t1",
    dim: int = 2,
    size: Sequence[int] = (192, 160),
    rng: RngLike = None,
    deformation: DeformationParams | None = None,
    axis: str = "axial",
    slice_range: tuple[float, float] = (0.45, 0.75),
    anatomy: DeformationParams | None = ANATOMY_VARIATION,
    contrast: ContrastParams | None = None,
    skull_stripped: bool = False,
    motion: MotionParams | None = MotionParams(),
    spacing: float | None = None,
) -> PhantomPair:
    """Simulate one registration pair (see the module docstring for the model).

    Args:
        moving: modality of the moving image (one of :data:`PHANTOM_MODALITIES`).
        fixed: modality of the fixed image.
        dim: 2 (slices) or 3 (volumes).
        size: grid shape, ``(H, W)`` or ``(X, Y, Z)``, each at least 16.
        rng: numpy Generator or seed.
        deformation: ranges of the pair's non-rigid misalignment (default :class:`DeformationParams`).
        axis: 2D slice orientation: ``axial``, ``coronal`` or ``sagittal``.
        slice_range: fractions of the brain's extent along the slice normal between which the 2D
            slice position is drawn (default: from the lateral ventricles to the upper cortex for axial).
        anatomy: subject variation applied to the template before anything else (``None``: the template).
        contrast: appearance and acquisition ranges (default :class:`ContrastParams`, or
            ``SKULL_STRIPPED_CONTRAST`` for skull-stripped pairs).
        skull_stripped: the brain alone (the original phantom): no head, no head motion.
        motion: rigid head motion between the two images (whole heads only; ``None``: none).
        spacing: voxel size in mm (default: fit the head or brain into the grid).

    Returns:
        A :class:`PhantomPair`.
    """
    moving_mod, fixed_mod = modality(moving, "moving"), modality(fixed, "fixed")
    size = check_size(dim, size)
    axis = SliceAxis(axis)
    if not 0.0 <= slice_range[0] <= slice_range[1] <= 1.0:
        raise InnregInputError(f"slice_range={slice_range}: need 0 <= low <= high <= 1")
    if spacing is not None and spacing <= 0:
        raise InnregInputError(f"spacing={spacing}: must be positive")
    rng = as_rng(rng)
    whole_head = not skull_stripped
    contrast = contrast or (SKULL_STRIPPED_CONTRAST if skull_stripped else ContrastParams())

    affine = grid_affine(size, axis, rng.uniform(*slice_range), load_template(), whole_head, spacing)
    grid_spacing = tuple(float(v) for v in np.linalg.norm(affine[:3, :dim], axis=0))
    subject = random_deformation(size, anatomy, rng).numpy() if anatomy is not None else np.zeros((dim, *size))
    head_shape = random_head(rng) if whole_head else None
    thick = dim == 2 and contrast.slice_thickness_mm is not None
    offsets = _SUB_SLICES_MM if thick else (0.0,)
    points = world_points(affine, subject, offsets)
    centre_index = offsets.index(0.0)
    layers = head_layers(points[centre_index], head_shape) if whole_head else None
    centre = _anatomy(points[centre_index], head_shape, layers)
    moving_seg, moving_head = centre.seg, centre.head
    foreground = (moving_seg > 0) | (moving_head > 0 if moving_head is not None else False)

    values = {role: draw_tissue_values(m, contrast.jitter, rng) for role, m in (("m", moving_mod), ("f", fixed_mod))}
    margins = _margins(foreground)
    acq_m = draw_acquisition(contrast, moving_mod, grid_spacing, margins, rng)
    acq_f = draw_acquisition(contrast, fixed_mod, grid_spacing, margins, rng)
    weights_m = through_plane_weights(acq_m.thickness_mm if thick else 0.0, offsets)
    weights_f = through_plane_weights(acq_f.thickness_mm if thick else 0.0, offsets)
    # Only the sub-slices that a thick slice averages over are simulated.
    sub_slices = {k: centre if k == centre_index else _anatomy(points[k], head_shape, layers)
                  for k in range(len(offsets)) if weights_m[k] > 0 or weights_f[k] > 0}
    moving_clean = _image(moving_mod, values["m"], sub_slices, weights_m)
    as_fixed_clean = _image(fixed_mod, values["f"], sub_slices, weights_m)
    fixed_clean = _image(fixed_mod, values["f"], sub_slices, weights_f)

    ddf = random_deformation(size, deformation, rng)
    if whole_head and motion is not None:
        moved = random_affine_field(
            size, motion.rotation_deg, (1.0, 1.0), 0.0, [motion.translation_mm / s for s in grid_spacing],
            rng, grid_spacing,
        )
        ddf = compose(ddf[None], moved[None])[0]
    labels = torch.from_numpy(np.stack([moving_seg] + ([moving_head.astype(np.int64)] if whole_head else [])))
    fixed_clean_t, fixed_labels = apply_deformation(torch.from_numpy(fixed_clean)[None], labels, ddf)
    fixed_labels = fixed_labels.numpy()
    fixed_seg = fixed_labels[0]
    return PhantomPair(
        moving=_acquire(moving_clean, acq_m, moving_mod, moving_seg, rng),
        fixed=_acquire(fixed_clean_t[0].numpy(), acq_f, fixed_mod, fixed_seg, rng),
        moving_seg=moving_seg,
        fixed_seg=fixed_seg,
        ddf=ddf.numpy(),
        affine=affine,
        moving_modality=moving_mod.value,
        fixed_modality=fixed_mod.value,
        moving_as_fixed=stored_image(fixed_mod, cut_field_of_view(resolve(as_fixed_clean, acq_m), acq_m)),
        moving_head_labels=moving_head,
        fixed_head_labels=fixed_labels[1].astype(np.uint8) if whole_head else None,
    )
