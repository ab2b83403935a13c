"""Export of innreg displacement fields as ITK/ANTs displacement fields.

innreg's own fields (:mod:`innreg.core.warp`, :func:`innreg.data.save_field`) are in voxels of the fixed
image, component k along array axis k. ITK, ANTs (``antsApplyTransforms``, ANTsPy's
``apply_transforms``), greedy and 3D Slicer instead read a displacement field as a vector image whose
vectors are **physical millimetres in LPS world coordinates**, although the file is a NIfTI image whose
geometry (affine) is RAS. The conversion used here:

* Both are pull-back maps defined on the fixed grid: the fixed point ``p`` maps to ``p + d(p)`` in the
  moving image. innreg registers the moving image after resampling it onto the fixed grid through
  world coordinates, so the voxel displacement ``u(x)`` at fixed voxel ``x`` (``p = A x + b`` with the
  fixed image's affine) is the world displacement ``d = A u`` (RAS, mm); the affine's translation
  cancels.
* RAS -> LPS negates the first two world components.
* The file: the fixed image's on-disk spatial axes (padded to three), a singleton fourth axis and the
  vector in the fifth, intent ``VECTOR``, float32, the fixed image's affine and header. A 2D fixed file
  (two on-disk axes) gets a 2-component field (ITK reads such a file as a 2D image in the plane of
  the first two world axes); any other layout gets 3 components. ITK collapses a singleton third axis
  of a vector image, so for 2D slices stored as ``H x W x 1`` ANTs does not apply the field
  correctly: store 2D images as ``H x W`` files (what ``innreg phantom`` writes) to use them in ANTs.
"""

from __future__ import annotations

import os
from pathlib import Path

import nibabel as nib
import numpy as np

from innreg.data.io import Image, _check_output_path, _disk_affine, _disk_shape, _output_header, _write_atomic

ITK_FIELD_DESCRIPTION = "ITK displacement field: pull-back p+d(p), mm, LPS"
# RAS -> LPS for a world vector: negate x and y.
_RAS_TO_LPS = np.array([-1.0, -1.0, 1.0])


def itk_displacement(ddf: np.ndarray, reference: Image) -> np.ndarray:
    """Convert a voxel displacement on ``reference``'s grid to ITK's convention.

    Args:
        ddf: ``(dim, *S)`` innreg displacement (voxels, pull-back, component k along array axis k)
            on the grid of ``reference`` (shape ``S``).
        reference: the fixed image (its affine gives direction cosines and spacing).

    Returns:
        float32 ``(*S, C)`` world displacement in mm, LPS; ``C`` = 2 for a 2D file on disk, else 3.
    """
    ddf = np.asarray(ddf, dtype=np.float64)
    if ddf.shape != (reference.dim, *reference.shape):
        raise ValueError(f"ddf shape {ddf.shape} must be (dim, *spatial) = {(reference.dim, *reference.shape)}")
    linear = reference.affine[:3, : reference.dim]  # column k: world step (RAS, mm) of array axis k
    world = np.einsum("ck,k...->...c", linear, ddf) * _RAS_TO_LPS
    components = 2 if len(_disk_shape(reference)) == 2 else 3
    return world[..., :components].astype(np.float32)


def save_itk_field(path: str | os.PathLike, ddf: np.ndarray, reference: Image) -> Path:
    """Write ``ddf`` (innreg voxel convention, on ``reference``'s grid) as an ITK displacement field.

    Args:
        path: destination ``.nii`` or ``.nii.gz``.
        ddf: ``(dim, *S)`` voxel displacement.
        reference: the fixed image the field is defined on.

    Returns:
        The written path (atomic write). ``antsApplyTransforms -r fixed -i moving -t path`` (or ANTsPy
        ``apply_transforms(fixed, moving, [path])``) then reproduces innreg's warp.
    """
    path = _check_output_path(path)
    vectors = itk_displacement(ddf, reference)
    spatial = _disk_shape(reference)[:3]
    spatial = spatial + (1,) * (3 - len(spatial))
    data = vectors.reshape(*spatial, 1, vectors.shape[-1])
    header = _output_header(reference, np.dtype(np.float32), ITK_FIELD_DESCRIPTION)
    header.set_intent("vector", name="itk_ddf")
    _write_atomic(nib.Nifti1Image(data, _disk_affine(reference), header=header), path)
    return path
