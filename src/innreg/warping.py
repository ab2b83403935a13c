"""Applying a saved registration to other images: ``innreg apply`` and :func:`innreg.apply`.

``innreg register`` writes into its output folder, besides the warped images, everything a later
application needs: ``ddf.nii.gz`` / ``inverse_ddf.nii.gz`` (innreg's voxel convention, on the fixed
grid) and the two grids, ``fixed_grid.nii.gz`` and ``moving_grid.nii.gz`` (all-zero images carrying
the fixed and the original moving image's shape, affine and header). The folder is written whole
(staged, the grids moved in last; :func:`innreg.inference.write_registration`), so one with its grids is
complete, and ``apply`` refuses to write its output over one of the folder's files or over its input.

* Forward (moving space -> fixed grid): the image is resampled onto the fixed grid through world
  coordinates and pulled back through ``ddf``, exactly what ``register`` does to the moving image and
  its labels, so a moving label map reproduces ``warped_seg.nii.gz`` voxel for voxel.
* Inverse (fixed space -> moving grid): the image is resampled onto the fixed grid, pulled back
  through ``inverse_ddf`` and resampled onto the moving grid. Moving-grid points outside the fixed
  image's field of view read the background (the inverse field exists only there).

Points from outside a grid read the background: 0, or air (-1000) for CT in Hounsfield units, where 0 would
be water (:func:`~innreg.data.intensity.background_value`).

Images on any grid are accepted (resampled through their affines: linear for intensities, nearest
neighbour for ``labels``); the output carries the target grid's affine and header.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from innreg.atomic import check_not_input
from innreg.data import (
    Image, Interpolation, background_value, load_field, load_image, load_labels, resample_to, save_image,
)
from innreg.errors import InnregInputError
from innreg.model import resolve_device
from innreg.nn import warp

FIXED_GRID = "fixed_grid.nii.gz"
MOVING_GRID = "moving_grid.nii.gz"
REGISTRATION_FILES = (
    "warped.nii.gz", "translated.nii.gz", "ddf.nii.gz", "inverse_ddf.nii.gz", "ddf_itk.nii.gz",
    "inverse_ddf_itk.nii.gz", FIXED_GRID, MOVING_GRID, "warped_seg.nii.gz", "overview.png", "registration.json",
)
"""Every file ``innreg register`` may write into a registration folder (:func:`innreg.inference.write_registration`):
a new registration replaces them all, removing those it does not write, and ``apply`` never overwrites one."""


def save_grids(out_dir: str | os.PathLike, fixed: Image, moving: Image) -> None:
    """Write the fixed and moving grids of a registration into ``out_dir`` (see the module docstring).

    Args:
        fixed: the fixed image (its header and on-disk layout are kept).
        moving: the moving image on its own grid, as loaded (before resampling onto the fixed grid).
    """
    out_dir = Path(out_dir)
    for name, image in ((FIXED_GRID, fixed), (MOVING_GRID, moving)):
        save_image(out_dir / name, np.zeros(image.shape, np.uint8), image, description="innreg registration grid")


def _grid(registration: Path, name: str) -> Image:
    path = registration / name
    if not path.is_file():
        raise InnregInputError(f"{registration}: not a registration folder written by innreg register (no {name})")
    return load_labels(path)


def apply(
    registration: str | os.PathLike,
    image: str | os.PathLike | Image,
    out: str | os.PathLike | None = None,
    labels: bool = False,
    inverse: bool = False,
    device: str | torch.device = "cpu",
) -> Image:
    """Warp ``image`` with a registration written by ``innreg register``.

    Args:
        registration: the folder ``register`` wrote (``--out``, or one pair's sub-folder).
        image: a NIfTI path or an :class:`Image`: moving-space data (forward) or fixed-space data
            (``inverse``), on any grid.
        out: optional destination ``.nii``/``.nii.gz`` (atomic write); neither ``image`` nor a file of
            the registration.
        labels: nearest-neighbour interpolation and integer output, for label maps.
        inverse: map fixed-space data onto the moving grid instead of moving-space data onto the fixed grid.
        device: where the warp runs: ``cpu`` (default), ``cuda[:k]`` or ``auto``. The resampling onto
            the fixed grid runs on the CPU either way; the warp is one pass, so a GPU pays off only
            for large 3D volumes.

    Returns:
        The warped :class:`Image` on the fixed grid (forward) or the moving grid (``inverse``), with
        that grid's affine and header.
    """
    registration = Path(registration)
    dev = resolve_device(device)
    if not registration.is_dir():
        raise InnregInputError(f"{registration}: registration folder not found")
    if out is not None:
        own = [("a file of the registration", registration / name) for name in REGISTRATION_FILES]
        check_not_input(out, [("image", None if isinstance(image, Image) else image), *own])
    fixed = _grid(registration, FIXED_GRID)
    target = _grid(registration, MOVING_GRID) if inverse else fixed
    ddf = load_field(registration / ("inverse_ddf.nii.gz" if inverse else "ddf.nii.gz"), like=fixed)
    if not isinstance(image, Image):
        image = load_labels(image) if labels else load_image(image)
    if image.dim != fixed.dim:
        raise InnregInputError(f"{image.name}: {image.dim}D image, but the registration is {fixed.dim}D")
    order = Interpolation.NEAREST if labels else Interpolation.LINEAR
    # The same steps and dtypes as innreg.inference, so labels reproduce warped_seg exactly.
    on_fixed = resample_to(image, fixed, order).array
    on_fixed = np.ascontiguousarray(on_fixed, dtype=np.int64 if labels else np.float32)  # labels warp exactly
    source = torch.from_numpy(on_fixed)[None, None].to(dev)
    field = torch.from_numpy(ddf)[None].to(dev)
    fill = 0.0 if labels else background_value(image.array)
    warped = warp(source, field, mode="nearest" if labels else "bilinear", fill=fill)[0, 0].cpu().numpy()
    dtype = image.array.dtype if labels else np.float32
    result = Image(warped.astype(dtype), fixed.affine, fixed.header)
    if inverse:
        result = resample_to(result, target, order)
        result = Image(result.array, target.affine, target.header)
    if out is not None:
        save_image(out, result.array, target, dtype=None if labels else np.float32)
    return result
