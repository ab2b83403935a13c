"""NIfTI reading and writing with the checks and conventions innreg relies on.

Geometry:

* An :class:`Image` holds the voxel array with singleton axes removed (a ``H x W x 1`` file becomes a
  2D ``H x W`` array; a fourth axis of size 1 is dropped) and a 4x4 ``affine`` whose columns follow
  the array's axes: column k is the step of array axis k, the columns of removed axes come after
  them. So ``affine @ (i, j, 0, 1)`` is the world position of pixel ``(i, j)`` of a 2D image, for
  any of ``H x W``, ``H x W x 1`` or ``H x 1 x W`` on disk.
* :func:`save_image` writes an array of the in-memory shape back with the reference's on-disk
  layout, affine and header, so a loaded ``H x W x 1`` file is written back as ``H x W x 1``.
* Every write goes to a temporary file in the destination folder first and is then renamed over the
  destination (``os.replace``), so a failed write never leaves a partial file behind.

Displacement-field files (:func:`save_field`, :func:`load_field`):

* The field ``ddf`` of shape ``(dim, *spatial)`` follows :mod:`innreg.core.warp`: pull-back
  ``warped(x) = moving(x + ddf(x))``, voxel units of the fixed image, channel k = displacement along
  array axis k of the loaded image (for ordinary files that is voxel axis k).
* It is stored the NIfTI way for vector data: the spatial axes in the reference's on-disk layout
  (padded to three), a singleton fourth (time) axis and the vector in the fifth axis, with intent
  ``VECTOR``; e.g. a 2D field on a ``192 x 160`` image is stored as ``192 x 160 x 1 x 1 x 2``.
  The header description says ``innreg ddf: pull-back x+u(x), voxel units, channel k = voxel axis k``.
* These are not ITK/ANTs displacement fields (physical millimetres, LPS); :mod:`innreg.data.itk`
  converts and writes those.
"""

from __future__ import annotations

import logging
import os
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import nibabel as nib
import numpy as np

from innreg.atomic import atomic_output
from innreg.errors import GeometryWarning, InnregInputError

FIELD_DESCRIPTION = "innreg ddf: pull-back x+u(x), voxel units, channel k = voxel axis k"
NIFTI_SUFFIXES = (".nii", ".nii.gz")


@dataclass
class Image:
    """A loaded (or in-memory) image.

    Attributes:
        array: voxel values, 2D ``(H, W)`` or 3D ``(X, Y, Z)``; float32 for images, int64 for labels.
        affine: 4x4 voxel-to-world matrix whose column k belongs to array axis k (see module doc).
        header: the NIfTI header it was read with (its data shape gives the on-disk layout), or
            ``None`` for an image built in memory (written with the array's own shape).
        path: the file it came from, if any.
    """

    array: np.ndarray
    affine: np.ndarray
    header: nib.Nifti1Header | None = None
    path: Path | None = None

    def __post_init__(self) -> None:
        self.affine = np.asarray(self.affine, dtype=np.float64)
        if self.affine.shape != (4, 4):
            raise ValueError(f"affine must be 4x4, got {self.affine.shape}")
        if self.array.ndim not in (2, 3):
            raise ValueError(f"image array must be 2D or 3D, got shape {self.array.shape}")

    @property
    def name(self) -> str:
        """Where the image came from, for messages."""
        return str(self.path) if self.path is not None else "<in-memory image>"

    @property
    def dim(self) -> int:
        """Number of spatial dimensions (2 or 3)."""
        return self.array.ndim

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.array.shape)


def _is_nifti_path(path: Path) -> bool:
    return path.name.endswith(NIFTI_SUFFIXES)


def _axis_order(disk_shape: tuple[int, ...]) -> list[int]:
    """Order of the (first three) on-disk axes in memory: non-singleton axes first, then the others."""
    shape3 = tuple(disk_shape[:3]) + (1,) * (3 - len(disk_shape[:3]))
    kept = [k for k in range(3) if shape3[k] > 1]
    return kept + [k for k in range(3) if shape3[k] == 1]


def _squeezed_geometry(path: Path, disk_shape: tuple[int, ...], affine: np.ndarray):
    """Check the on-disk shape and return (in-memory shape, in-memory affine)."""
    if len(disk_shape) == 0 or min(disk_shape) == 0:
        raise InnregInputError(f"{path}: empty image (shape {disk_shape})")
    if any(s > 1 for s in disk_shape[3:]):
        raise InnregInputError(
            f"{path}: {len(disk_shape)}D image of shape {disk_shape}; only 2D and 3D images are supported"
        )
    order = _axis_order(disk_shape)
    shape3 = tuple(disk_shape[:3]) + (1,) * (3 - len(disk_shape[:3]))
    spatial = tuple(shape3[k] for k in order if shape3[k] > 1)
    if len(spatial) < 2:
        raise InnregInputError(f"{path}: image of shape {disk_shape} has fewer than 2 non-singleton axes")
    return spatial, affine[:, order + [3]]


def _disk_affine(image: Image) -> np.ndarray:
    """Inverse of the column reordering done at load time."""
    if image.header is None:
        return image.affine
    order = _axis_order(tuple(image.header.get_data_shape()))
    affine = np.empty_like(image.affine)
    affine[:, order + [3]] = image.affine
    return affine


def _disk_shape(image: Image) -> tuple[int, ...]:
    """The image's data shape on disk (the array's own shape for in-memory images)."""
    if image.header is None:
        return image.shape
    return tuple(int(s) for s in image.header.get_data_shape())


@contextmanager
def _header_problems() -> Iterator[list[str]]:
    """Collect (instead of printing) the header problems nibabel logs while loading a file: voxel
    sizes (pixdim) that are zero or negative."""
    problems: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            message = record.getMessage()
            if "pixdim" in message:
                problems.append(message.split(";")[0].replace("should be", "must be"))

    logger = logging.getLogger("nibabel.global")
    handler, propagate = Collect(), logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield problems
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate


def _check_affine(path: Path, affine: np.ndarray) -> None:
    """Refuse a voxel-to-world matrix with NaN/inf entries or a zero-length (or degenerate) voxel axis."""
    if not np.isfinite(affine).all():
        raise InnregInputError(f"{path}: the affine (sform/qform) has NaN or infinite entries")
    if abs(np.linalg.det(affine[:3, :3])) < 1e-12:
        raise InnregInputError(f"{path}: the affine (sform/qform) is singular: a voxel axis has zero length")


def _itk_geometry_caveat(img: nib.spatialimages.SpatialImage) -> str | None:
    """Why ITK/ANTs may place this NIfTI file elsewhere than innreg does, or ``None``: no qform or sform
    (nibabel then uses a centred default grid, ITK the origin), or a qform and sform that disagree (nibabel
    uses the sform; ITK may read the qform, taking the sform only as a scanner transform it can decompose)."""
    if not isinstance(img, (nib.Nifti1Image, nib.Nifti2Image)):
        return None
    header = img.header
    qform_code, sform_code = int(header["qform_code"]), int(header["sform_code"])
    if qform_code == 0 and sform_code == 0:
        return "no qform or sform is set; innreg uses nibabel's default geometry, ITK and ANTs their own"
    if qform_code > 0 and sform_code > 0 and not np.allclose(header.get_qform(), header.get_sform(), atol=1e-3):
        return "its qform and sform disagree; innreg uses the sform, ITK and ANTs may use the qform"
    return None


def _read(path: str | os.PathLike, what: str) -> tuple[Path, np.ndarray, np.ndarray, nib.Nifti1Header]:
    """Load a file with nibabel: (path, in-memory array as float64, in-memory affine, header)."""
    path = Path(path)
    if not path.is_file():
        raise InnregInputError(f"{path}: {what} file not found")
    try:
        with _header_problems() as problems:
            img = nib.load(str(path))
    except Exception as err:  # nibabel raises many types for unreadable files
        raise InnregInputError(f"{path}: not a NIfTI image nibabel can read ({type(err).__name__})") from None
    if problems:  # nibabel "fixes" these silently (abs or 1); the geometry would then be a guess
        raise InnregInputError(f"{path}: invalid header: {problems[0]}")
    if not isinstance(img, nib.spatialimages.SpatialImage):
        raise InnregInputError(f"{path}: not a NIfTI image (nibabel read it as {type(img).__name__})")
    _check_affine(path, np.asarray(img.affine, dtype=np.float64))
    caveat = _itk_geometry_caveat(img)
    if caveat:
        warnings.warn(f"{path}: {caveat} (ddf_itk.nii.gz may not line up in them)", GeometryWarning, stacklevel=3)
    dtype = img.get_data_dtype()
    if dtype.kind == "c" or dtype.fields is not None:
        raise InnregInputError(f"{path}: unsupported voxel type {dtype} (need real scalar values)")
    disk_shape = tuple(int(s) for s in img.shape)
    spatial, affine = _squeezed_geometry(path, disk_shape, np.asarray(img.affine, dtype=np.float64))
    try:
        data = np.asarray(img.dataobj, dtype=np.float64)
    except Exception as err:
        raise InnregInputError(f"{path}: cannot read voxel data ({type(err).__name__}: {err})") from None
    # Reorder axes so the non-singleton ones come first (as in the affine), then drop singletons.
    data = data.reshape(disk_shape[:3] + (1,) * (3 - len(disk_shape[:3])))
    data = np.transpose(data, _axis_order(disk_shape)).reshape(spatial)
    if not np.isfinite(data).all():
        bad = "NaN" if np.isnan(data).any() else "infinite"
        raise InnregInputError(f"{path}: image contains {bad} values")
    header = nib.Nifti1Header.from_header(img.header)
    return path, data, affine, header


def load_image(path: str | os.PathLike) -> Image:
    """Read a 2D or 3D intensity image as float32.

    Args:
        path: a ``.nii``/``.nii.gz`` file (any format nibabel reads as a spatial image is accepted).

    Returns:
        The :class:`Image`; singleton axes are squeezed (see the module docstring).

    Raises:
        InnregInputError: missing or unreadable file, complex/RGB voxels, NaN/inf values, empty or
            constant image, more than three non-singleton axes or a non-singleton fourth axis.
    """
    path, data, affine, header = _read(path, "image")
    if data.min() == data.max():
        raise InnregInputError(f"{path}: image is constant (every voxel is {data.flat[0]:g})")
    return Image(data.astype(np.float32), affine, header, path)


def load_labels(path: str | os.PathLike, like: Image | None = None) -> Image:
    """Read an integer label map (0 = background).

    Args:
        path: NIfTI label file.
        like: the image the labels belong to; when given, the shapes must match.

    Returns:
        An :class:`Image` with an int64 array.

    Raises:
        InnregInputError: the errors of :func:`load_image` (except constant maps, which are allowed),
            non-integer values, or a shape different from ``like`` (naming both files).
    """
    path, data, affine, header = _read(path, "label")
    check_label_values(path, data)
    if like is not None and data.shape != like.shape:
        raise InnregInputError(
            f"{path}: label map shape {data.shape} differs from image {like.name} shape {like.shape}"
        )
    return Image(data.astype(np.int64), affine, header, path)


def check_label_values(path: str | os.PathLike, array: np.ndarray) -> None:
    """Raise :class:`InnregInputError` naming ``path`` where ``array`` holds a value that is not a whole number."""
    whole = np.round(array)
    if not np.array_equal(array, whole):
        raise InnregInputError(f"{path}: label map has non-integer values (e.g. {array[array != whole][0]:g})")


def _smallest_int_dtype(array: np.ndarray) -> np.dtype:
    lo, hi = (int(array.min()), int(array.max())) if array.size else (0, 0)
    for dtype in (np.uint8, np.int16, np.int32):
        info = np.iinfo(dtype)
        if info.min <= lo and hi <= info.max:
            return np.dtype(dtype)
    return np.dtype(np.int64)


def _check_output_path(path: str | os.PathLike) -> Path:
    path = Path(path)
    if not _is_nifti_path(path):
        raise InnregInputError(f"{path}: output file must end with .nii or .nii.gz")
    if path.parent.exists() and not path.parent.is_dir():
        raise InnregInputError(f"{path}: {path.parent} is a file, not a folder")
    if not path.parent.is_dir():
        raise InnregInputError(f"{path}: output folder {path.parent} does not exist")
    return path


def _write_atomic(img: nib.Nifti1Image, path: Path) -> None:
    """Write ``img`` to a temporary file next to ``path`` (same suffix) and rename it over ``path``."""
    suffix = ".nii.gz" if path.name.endswith(".nii.gz") else ".nii"
    with atomic_output(path, suffix) as tmp:
        nib.save(img, tmp)


def _output_header(reference: Image, dtype: np.dtype, description: str | None) -> nib.Nifti1Header:
    header = reference.header.copy() if reference.header is not None else nib.Nifti1Header()
    header.set_data_dtype(dtype)
    header.set_intent("none")
    # the reference's display range and description describe its content, not the grid
    header["cal_min"], header["cal_max"] = 0.0, 0.0
    header["descrip"] = (description or "").encode("ascii", "replace")[:79]
    return header


def save_image(
    path: str | os.PathLike,
    array: np.ndarray,
    reference: Image,
    dtype: np.dtype | type | str | None = None,
    description: str | None = None,
) -> Path:
    """Write ``array`` on the grid of ``reference`` (its affine, header and on-disk layout).

    Args:
        path: destination ``.nii`` or ``.nii.gz`` (compression follows the suffix).
        array: values with the reference's in-memory shape.
        reference: the image whose grid the array lives on.
        dtype: on-disk type; default float32 for floating arrays, the smallest of uint8/int16/int32
            that holds integer or boolean arrays.
        description: header ``descrip`` text (truncated to 79 characters); empty by default.

    Returns:
        The written path. The write is atomic (temporary file + rename).
    """
    path = _check_output_path(path)
    array = np.asarray(array)
    if array.shape != reference.shape:
        raise ValueError(f"array shape {array.shape} differs from reference {reference.name} shape {reference.shape}")
    if dtype is None:
        dtype = np.float32 if np.issubdtype(array.dtype, np.floating) else _smallest_int_dtype(array)
    dtype = np.dtype(dtype)
    data = array.astype(dtype).reshape(_disk_shape(reference))
    img = nib.Nifti1Image(data, _disk_affine(reference), header=_output_header(reference, dtype, description))
    _write_atomic(img, path)
    return path


def save_field(path: str | os.PathLike, ddf: np.ndarray, reference: Image) -> Path:
    """Write a displacement field as a 5D NIfTI vector image (see the module docstring).

    Args:
        path: destination ``.nii`` or ``.nii.gz``.
        ddf: ``(dim, *spatial)`` displacement in voxels on the reference's grid.
        reference: the fixed image the field is defined on.
    """
    path = _check_output_path(path)
    ddf = np.asarray(ddf, dtype=np.float32)
    if ddf.shape != (reference.dim, *reference.shape):
        raise ValueError(f"ddf shape {ddf.shape} must be (dim, *spatial) = {(reference.dim, *reference.shape)}")
    spatial = _disk_shape(reference)[:3]
    spatial = spatial + (1,) * (3 - len(spatial))
    data = np.moveaxis(ddf, 0, -1).reshape(*spatial, 1, reference.dim)
    header = _output_header(reference, np.dtype(np.float32), FIELD_DESCRIPTION)
    header.set_intent("vector", name="innreg_ddf")
    img = nib.Nifti1Image(data, _disk_affine(reference), header=header)
    _write_atomic(img, path)
    return path


def load_field(path: str | os.PathLike, like: Image | None = None) -> np.ndarray:
    """Read a field written by :func:`save_field`.

    Args:
        path: the field file.
        like: the image the field is defined on; when given, the spatial shapes must match.

    Returns:
        float32 ``(dim, *spatial)`` displacement (voxel units, pull-back, channel k = array axis k).
    """
    path = Path(path)
    if not path.is_file():
        raise InnregInputError(f"{path}: displacement field file not found")
    try:
        img = nib.load(str(path))
        data = np.asarray(img.dataobj, dtype=np.float32)
    except Exception as err:
        raise InnregInputError(f"{path}: not a NIfTI field nibabel can read ({type(err).__name__})") from None
    if data.ndim != 5 or data.shape[3] != 1:
        raise InnregInputError(f"{path}: expected a 5D vector field (X, Y, Z, 1, dim), got shape {data.shape}")
    spatial, _ = _squeezed_geometry(path, data.shape[:3], np.asarray(img.affine))
    if data.shape[4] != len(spatial):
        raise InnregInputError(f"{path}: field has {data.shape[4]} components for a {len(spatial)}D grid")
    if not np.isfinite(data).all():
        raise InnregInputError(f"{path}: displacement field contains NaN or infinite values")
    data = np.transpose(data[:, :, :, 0, :], _axis_order(data.shape[:3]) + [3]).reshape(*spatial, len(spatial))
    if like is not None and spatial != like.shape:
        raise InnregInputError(f"{path}: field grid {spatial} differs from image {like.name} shape {like.shape}")
    return np.ascontiguousarray(np.moveaxis(data, -1, 0))


def voxel_spacing(image: Image) -> tuple[float, ...]:
    """Voxel size along each array axis (mm): the lengths of the affine's columns.

    The affine is the geometry every resampling uses (nibabel takes it from the sform when one is set), so
    distances in mm follow it too, also where a header's ``pixdim`` disagrees with its sform.
    """
    zooms = np.linalg.norm(image.affine[:3, : image.dim], axis=0)
    return tuple(float(z) for z in zooms)
