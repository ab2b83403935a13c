"""Non-brain tissue of a whole head: shells and structures around the ICBM152 brain, per case.

Head labels (the ``*_head_labels`` maps, values of :class:`HeadLabel`):

====  ==============  =========================================================================
0     none            brain (see the brain labels 1 CSF, 2 GM, 3 WM) or air outside the head
1     outer CSF       between the brain and the skull, 1.5-3.5 mm
2     cortical bone   inner and outer tables of the skull, each 20-30 % of its thickness
3     marrow          diploe between the tables; skull 5-8 mm, thinner at the temples, thicker at the occiput
4     muscle          temporalis (up to ~10 mm at the temples), a thin galea elsewhere, face and neck
5     fat             subcutaneous fat 2-6 mm and orbital fat behind the eyes
6     skin            1.5-3 mm
7     eye             vitreous of the eyeballs (radius 11-12.5 mm)
8     air             paranasal sinuses (frontal, maxillary, sphenoid) and the nasal cavity
====  ==============  =========================================================================

Every thickness varies smoothly in space (a sum of random plane waves, wavelengths 20-70 mm) and
per case, and the brain-side boundaries are perturbed by a smooth irregular field. Shells are
measured from the brain's smoothed outline, the scalp from the skull or the face-and-neck block
(:mod:`innreg.data.phantom.template`), all in the template's world frame (MNI mm), so the subject
deformation moves them with the brain.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np


class HeadLabel(IntEnum):
    """Values of the head-label maps (see the module docstring)."""

    NONE = 0
    OUTER_CSF = 1
    BONE = 2
    MARROW = 3
    MUSCLE = 4
    FAT = 5
    SKIN = 6
    EYE = 7
    AIR = 8


HEAD_LABEL_DESCRIPTION = "innreg head 0 brain/out 1 CSF 2 bone 3 marrow 4 muscle 5 fat 6 skin 7 eye 8 air"  # <= 79 chars

# MNI positions (mm) of paired and midline structures: (centre, radii).
_EYE_CENTRE, _EYE_RADIUS = np.array([32.0, 55.0, -40.0]), (11.0, 12.5)
_SINUSES = {
    "maxillary_left": (np.array([-26.0, 36.0, -68.0]), np.array([11.0, 14.0, 14.0])),
    "maxillary_right": (np.array([26.0, 36.0, -68.0]), np.array([11.0, 14.0, 14.0])),
    "nasal": (np.array([0.0, 42.0, -62.0]), np.array([6.0, 24.0, 18.0])),
    "sphenoid": (np.array([0.0, 18.0, -52.0]), np.array([10.0, 9.0, 8.0])),
}
_FRONTAL_SINUS = (np.array([0.0, 78.0, -6.0]), np.array([13.0, 6.0, 10.0]))


class SmoothField:
    """Random smooth field of unit variance: ``sqrt(2/n) * sum cos(k_i . x + phi_i)``, ``x`` in mm."""

    def __init__(self, rng: np.random.Generator, wavelength_mm: tuple[float, float] = (20.0, 70.0), n: int = 6):
        directions = rng.standard_normal((n, 3))
        directions /= np.linalg.norm(directions, axis=1, keepdims=True)
        self.k = directions * (2 * np.pi / rng.uniform(*wavelength_mm, (n, 1)))
        self.phase = rng.uniform(0, 2 * np.pi, n)

    def __call__(self, points: np.ndarray) -> np.ndarray:
        """Values at world points ``(3, *S)``: ``S``."""
        phase = self.phase.astype(points.dtype).reshape(-1, *([1] * (points.ndim - 1)))
        waves = np.tensordot(self.k.astype(points.dtype), points, axes=1) + phase
        return np.sqrt(2.0 / len(self.phase)) * np.cos(waves).sum(0)


@dataclass
class HeadShape:
    """Per-case draws of the head geometry (see :func:`random_head`)."""

    irregular: SmoothField
    csf: tuple[float, SmoothField]
    skull: tuple[float, SmoothField]
    tables: tuple[float, float]
    temporalis_mm: float
    fat: tuple[float, SmoothField]
    skin: tuple[float, SmoothField]
    eye_shift: np.ndarray
    eye_radius: float
    sinus_scale: float
    frontal_sinus: bool


def random_head(rng: np.random.Generator) -> HeadShape:
    """Draw one subject's head geometry (ranges in the module docstring)."""
    return HeadShape(
        irregular=SmoothField(rng, (12.0, 40.0)),
        csf=(rng.uniform(1.5, 3.5), SmoothField(rng)),
        skull=(rng.uniform(5.0, 8.0), SmoothField(rng)),
        tables=(rng.uniform(0.2, 0.3), rng.uniform(0.2, 0.3)),
        temporalis_mm=rng.uniform(5.0, 10.0),
        fat=(rng.uniform(2.0, 6.0), SmoothField(rng)),
        skin=(rng.uniform(1.5, 3.0), SmoothField(rng)),
        eye_shift=rng.uniform(-3.0, 3.0, 3),
        eye_radius=rng.uniform(*_EYE_RADIUS),
        sinus_scale=rng.uniform(0.7, 1.15),
        frontal_sinus=bool(rng.uniform() < 0.85),
    )


def _thickness(draw: tuple[float, SmoothField], points: np.ndarray, variation: float, floor: float) -> np.ndarray:
    mean, field = draw
    return np.maximum(mean * (1 + variation * field(points)), floor)


def _inside(points: np.ndarray, centre: np.ndarray, radii: np.ndarray) -> np.ndarray:
    shape = (3, *([1] * (points.ndim - 1)))
    return (((points - centre.reshape(shape)) / radii.reshape(shape)) ** 2).sum(0) < 1


@dataclass
class Layers:
    """Thickness maps (mm) of the shells and the boundary perturbation at the voxels of one slice."""

    irregular: np.ndarray
    csf: np.ndarray
    skull: np.ndarray
    muscle: np.ndarray
    fat: np.ndarray
    skin: np.ndarray


def head_layers(points: np.ndarray, shape: HeadShape) -> Layers:
    """Evaluate the case's thickness fields at world points ``(3, *S)`` (mm).

    They vary over centimetres, so a thick 2D slice evaluates them once, at its centre.
    """
    points = points.astype(np.float32)
    x, y, z = points
    temporal = np.clip((np.abs(x) - 45) / 20, 0, 1) * np.exp(-(((z + 5) / 25) ** 2) - ((y + 15) / 40) ** 2)
    occipital = np.clip((-y - 70) / 20, 0, 1) * np.exp(-((z / 30) ** 2))
    return Layers(
        irregular=1.2 * shape.irregular(points),
        csf=_thickness(shape.csf, points, 0.35, 0.5),
        skull=_thickness(shape.skull, points, 0.25, 2.0) * (1 - 0.35 * temporal) + 2.0 * occipital,
        muscle=0.8 + shape.temporalis_mm * temporal,
        fat=_thickness(shape.fat, points, 0.4, 0.5),
        skin=_thickness(shape.skin, points, 0.2, 1.0),
    )


def head_labels(
    points: np.ndarray,
    brain_mask: np.ndarray,
    brain_distance: np.ndarray,
    face_distance: np.ndarray,
    shape: HeadShape,
    layers: Layers,
) -> np.ndarray:
    """Head label map (:class:`HeadLabel`) at world points.

    Args:
        points: ``(3, *S)`` template world coordinates (mm) of the voxels.
        brain_mask: ``S`` brain-mask probability (voxels >= 0.5 are brain and get label 0).
        brain_distance: ``S`` signed distance (mm) to the brain's smoothed outline.
        face_distance: ``S`` signed distance (mm) to the face-and-neck block.
        shape: the case's geometry (:func:`random_head`).
        layers: its thickness maps at these voxels (:func:`head_layers`).

    Returns:
        uint8 ``S``.
    """
    csf, skull, muscle, fat, skin = layers.csf, layers.skull, layers.muscle, layers.fat, layers.skin
    d = brain_distance + layers.irregular
    vault = d < csf + skull
    scalp = np.minimum(d - csf - skull, face_distance + layers.irregular)
    labels = np.zeros(d.shape, dtype=np.uint8)
    labels[scalp < muscle + fat + skin] = HeadLabel.SKIN
    labels[scalp < muscle + fat] = HeadLabel.FAT
    labels[scalp < muscle] = HeadLabel.MUSCLE  # also fills the face and neck (scalp < 0)
    depth = d - csf  # into the skull
    labels[vault] = HeadLabel.BONE
    labels[vault & (depth > shape.tables[0] * skull) & (depth < (1 - shape.tables[1]) * skull) & (skull > 3)] = HeadLabel.MARROW
    labels[d < csf] = HeadLabel.OUTER_CSF
    if shape.frontal_sinus:
        in_bone = (labels == HeadLabel.BONE) | (labels == HeadLabel.MARROW)
        labels[in_bone & _inside(points, _FRONTAL_SINUS[0], _FRONTAL_SINUS[1] * shape.sinus_scale)] = HeadLabel.AIR
    in_face = scalp < 0
    for centre, radii in _SINUSES.values():
        labels[in_face & _inside(points, centre, radii * shape.sinus_scale)] = HeadLabel.AIR
    for side in (-1.0, 1.0):
        eye = _EYE_CENTRE * np.array([side, 1.0, 1.0]) + shape.eye_shift
        radius = np.full(3, shape.eye_radius)
        orbit = _inside(points, eye - np.array([0.0, 6.0, 0.0]), 1.5 * radius)
        labels[orbit & (labels != HeadLabel.SKIN)] = HeadLabel.FAT
        labels[_inside(points, eye, radius)] = HeadLabel.EYE
    labels[brain_mask >= 0.5] = HeadLabel.NONE
    return labels
