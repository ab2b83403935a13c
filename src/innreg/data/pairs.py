"""Pair manifests, the training dataset and whole-image pair loading.

A manifest is a CSV file with a header row and the columns ``moving`` and ``fixed`` (required) and
``moving_seg``, ``fixed_seg``, ``true_ddf``, ``fixed_mask``, ``moving_mask``, ``moving_as_fixed``
(optional; empty cells allowed; ``moving_as_fixed`` is the moving anatomy imaged in the fixed
contrast, the translation's truth, as the phantom writes it). Relative paths are resolved against
the CSV file's folder; other columns are ignored. A UTF-8 byte-order mark, quoted cells and spaces
after the commas are accepted; a repeated column is refused.

Masks (non-zero = use the voxel) restrict the image similarity to a region, e.g. a brain mask or the
complement of a lesion: in training (masked NMI) and in the per-pair refinement. Each mask has the
shape of its image.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from innreg.data.deformations import DeformationParams, apply_deformation, random_deformation
from innreg.data.intensity import Interpolation, normalize_intensity, resample_to
from innreg.data.io import Image, load_image, load_labels
from innreg.core.filters import coarse_shape, downsample
from innreg.errors import InnregInputError

REQUIRED_COLUMNS = ("moving", "fixed")
OPTIONAL_COLUMNS = ("moving_seg", "fixed_seg", "true_ddf", "fixed_mask", "moving_mask", "moving_as_fixed")


def check_working_size(shape: tuple[int, ...], factor: int, min_size: int, name: str) -> None:
    """Raise :class:`~innreg.errors.InnregInputError` naming ``name`` if an axis of ``shape``
    downsampled by ``factor`` (:func:`~innreg.core.filters.coarse_shape`) has fewer than ``min_size`` voxels."""
    if min(coarse_shape(tuple(shape), factor)) < min_size:
        need = (min_size - 1) * factor + 1
        raise InnregInputError(
            f"{name}: image of size {'x'.join(map(str, shape))} is too small for the network "
            f"(every axis needs at least {need} voxels with model.input_factor {factor})"
        )


@dataclass(frozen=True)
class PairRecord:
    """Paths of one registration pair (strings are converted to :class:`~pathlib.Path`)."""

    moving: Path
    fixed: Path
    moving_seg: Path | None = None
    fixed_seg: Path | None = None
    true_ddf: Path | None = None
    fixed_mask: Path | None = None
    moving_mask: Path | None = None
    moving_as_fixed: Path | None = None

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None and not isinstance(value, Path):
                object.__setattr__(self, f.name, Path(value))

    def files(self) -> list[tuple[str, Path]]:
        """``(column, path)`` of every file the record names, in column order."""
        return [(f.name, getattr(self, f.name)) for f in fields(self) if getattr(self, f.name) is not None]


def read_manifest(csv_path: str | os.PathLike) -> list[PairRecord]:
    """Read a pair manifest (see the module docstring).

    Raises:
        InnregInputError: the CSV is missing or has no rows, a required column is missing, a
            required cell is empty, or a listed file does not exist (the message names the row).
    """
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise InnregInputError(f"{csv_path}: manifest file not found")
    try:
        # utf-8-sig: spreadsheet programs start CSV files with a byte-order mark
        with csv_path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh, skipinitialspace=True)  # also reads 'a.nii, "b c.nii"'
            header = [h.strip() for h in (reader.fieldnames or [])]
            if not header:
                raise InnregInputError(f"{csv_path}: manifest is empty (needs a header row with 'moving' and 'fixed' columns)")
            for column in REQUIRED_COLUMNS:
                if column not in header:
                    raise InnregInputError(f"{csv_path}: manifest has no '{column}' column (columns: {', '.join(header)})")
            repeated = sorted({h for h in header if h and header.count(h) > 1})
            if repeated:
                raise InnregInputError(f"{csv_path}: manifest repeats the column(s) {', '.join(repeated)}")
            # cells beyond the header come as a list under the key None: ignored, like other columns
            rows = [{(k or "").strip(): (v or "").strip() for k, v in row.items() if not isinstance(v, list)} for row in reader]
    except UnicodeDecodeError as err:
        raise InnregInputError(f"{csv_path}: manifest is not UTF-8 text (byte {err.start})") from None
    except csv.Error as err:
        raise InnregInputError(f"{csv_path}: not a readable CSV manifest ({err})") from None
    rows = [row for row in rows if any(row.values())]
    if not rows:
        raise InnregInputError(f"{csv_path}: manifest lists no pairs")
    records = []
    for line, row in enumerate(rows, start=2):
        paths: dict[str, Path | None] = {}
        for column in REQUIRED_COLUMNS + OPTIONAL_COLUMNS:
            cell = row.get(column, "")
            if not cell:
                if column in REQUIRED_COLUMNS:
                    raise InnregInputError(f"{csv_path}: line {line} has an empty '{column}' cell")
                paths[column] = None
                continue
            path = Path(cell).expanduser()
            path = path if path.is_absolute() else csv_path.absolute().parent / path
            if not path.is_file():
                raise InnregInputError(f"{csv_path}: line {line}: {column} file {path} not found")
            paths[column] = path
        records.append(PairRecord(**paths))
    return records


def pair_records(pairs: str | os.PathLike | Sequence[PairRecord]) -> list[PairRecord]:
    """The records of a manifest CSV (or the given records), refusing an empty list."""
    records = read_manifest(pairs) if isinstance(pairs, (str, os.PathLike)) else list(pairs)
    if not records:
        raise InnregInputError(f"{pairs}: no pairs")
    return records


def _on_fixed_grid(moving: Image, fixed: Image, order: Interpolation) -> Image:
    """``moving`` itself if it shares the fixed grid, else resampled onto it."""
    if moving.dim != fixed.dim:
        raise InnregInputError(f"{moving.name} is {moving.dim}D but {fixed.name} is {fixed.dim}D")
    same = moving.shape == fixed.shape and np.allclose(moving.affine, fixed.affine, atol=1e-4)
    return moving if same else resample_to(moving, fixed, order)


def load_pair(record: PairRecord) -> tuple[Image, Image, Image | None, Image | None]:
    """Load a whole pair for inference or evaluation (no slicing, no normalisation).

    The moving image and its labels are resampled onto the fixed image's grid (linear / nearest)
    when the shapes or affines differ.

    Returns:
        ``(moving, fixed, moving_seg or None, fixed_seg or None)``, all on the fixed grid.
    """
    moving, fixed = load_image(record.moving), load_image(record.fixed)
    moving_seg = load_labels(record.moving_seg, like=moving) if record.moving_seg else None
    fixed_seg = load_labels(record.fixed_seg, like=fixed) if record.fixed_seg else None
    resampled = _on_fixed_grid(moving, fixed, Interpolation.LINEAR)
    if moving_seg is not None and resampled is not moving:
        moving_seg = resample_to(moving_seg, fixed, Interpolation.NEAREST)
    return resampled, fixed, moving_seg, fixed_seg


def load_masks(record: PairRecord, fixed: Image) -> tuple[np.ndarray | None, np.ndarray | None]:
    """The record's masks as float32 ``{0, 1}`` arrays on the fixed grid: ``(moving_mask, fixed_mask)``.

    The moving mask stays in moving space (it is resampled onto the fixed grid with nearest neighbour,
    like the moving image, and not warped); ``None`` where the record has no mask.

    Raises:
        InnregInputError: unreadable mask, a mask whose shape differs from its image's, or an empty mask
            (the similarity would have nothing to compare).
    """
    fixed_mask = moving_mask = None
    if record.fixed_mask is not None:
        fixed_mask = (load_labels(record.fixed_mask, like=fixed).array != 0).astype(np.float32)
        _check_not_empty(fixed_mask, record.fixed_mask)
    if record.moving_mask is not None:
        moving = load_image(record.moving)
        mask = load_labels(record.moving_mask, like=moving)
        _check_not_empty(mask.array, record.moving_mask)
        moving_mask = (_on_fixed_grid(mask, fixed, Interpolation.NEAREST).array != 0).astype(np.float32)
    return moving_mask, fixed_mask


def _check_not_empty(mask: np.ndarray, path: Path) -> None:
    """An all-zero ``mask`` raises :class:`InnregInputError` naming ``path``."""
    if not mask.any():
        raise InnregInputError(f"{path}: mask has no non-zero voxel")


class PairDataset(Dataset):
    """Training pairs as tensors normalised to ``[0, 1]`` (percentiles 1/99 of each image; with ``hu_curve``,
    CT in Hounsfield units by :data:`~innreg.data.intensity.HU_CURVE_KNOTS`, see
    :func:`~innreg.data.intensity.normalize_intensity`).

    Each item is ``{"moving": (1, *S) float32, "fixed": (1, *S) float32, "index": int}`` on the fixed
    image's grid (the moving image is resampled onto it when needed).

    * ``dim=2`` and 3D volumes: one slice drawn at random along ``slice_axis`` (of the loaded
      array) between the fractions ``slice_range`` of its length; the same slice of both images.
    * ``dim=2`` and 2D images, or ``dim=3`` and 3D volumes: the whole image.
    * ``factor``: volumes are downsampled by this factor (:func:`innreg.core.filters.downsample`) when
      first loaded, so slicing, augmentation and training run on the networks' working grid; an image
      whose working grid has an axis under ``min_size`` voxels is refused, naming its file.
    * ``augment``: a random affine + elastic deformation (:func:`random_deformation`) of the moving
      image only; ``True`` uses the default :class:`DeformationParams`.
    * Masks: when any record has a ``fixed_mask`` or ``moving_mask``, every item also holds
      ``"fixed_mask"`` and ``"moving_mask"`` (``(1, *S)`` float32 in {0, 1}; all ones where a record has
      none), sliced and deformed like their images; the intensity percentiles come from inside them.

    Loaded, resampled and normalised volumes are cached in memory. Random draws come from
    ``numpy.random.default_rng([seed, torch.initial_seed(), index, call count])``: reproducible in one
    process for a fixed torch seed, and different in each DataLoader worker and epoch.
    """

    def __init__(
        self,
        records: Sequence[PairRecord],
        dim: int = 2,
        slice_axis: int = 2,
        slice_range: tuple[float, float] = (0.3, 0.7),
        augment: DeformationParams | bool | None = None,
        seed: int = 0,
        factor: int = 1,
        min_size: int = 1,
        hu_curve: bool = False,
    ) -> None:
        if dim not in (2, 3):
            raise InnregInputError(f"dim={dim}: must be 2 or 3")
        if not 0.0 <= slice_range[0] <= slice_range[1] <= 1.0:
            raise InnregInputError(f"slice_range={tuple(slice_range)}: need 0 <= low <= high <= 1")
        if slice_axis not in (0, 1, 2):
            raise InnregInputError(f"slice_axis={slice_axis}: must be 0, 1 or 2")
        if not records:
            raise InnregInputError("PairDataset: no pairs")
        self.records = list(records)
        self.dim = dim
        self.slice_axis = slice_axis
        self.slice_range = tuple(slice_range)
        self.augment = DeformationParams() if augment is True else (augment or None)
        self.seed = seed
        self.factor, self.min_size, self.hu_curve = factor, min_size, hu_curve
        self.has_masks = any(r.fixed_mask is not None or r.moving_mask is not None for r in self.records)
        self._cache: dict[int, tuple[np.ndarray, ...]] = {}
        self._calls = 0

    def __len__(self) -> int:
        return len(self.records)

    def volumes(self, index: int) -> tuple[np.ndarray, ...]:
        """Normalised ``(moving, fixed)`` arrays of a pair on the fixed grid (cached), followed by
        ``(moving_mask, fixed_mask)`` when the dataset has masks."""
        if index not in self._cache:
            record = self.records[index]
            fixed = load_image(record.fixed)
            if self.dim == 3 and fixed.dim == 2:
                raise InnregInputError(f"{record.fixed}: 2D image, but the dataset was built with dim=3")
            spatial = fixed.array.shape
            if self.dim == 2 and fixed.dim == 3:  # 2D slices of a volume
                spatial = tuple(n for axis, n in enumerate(spatial) if axis != self.slice_axis)
            check_working_size(spatial, self.factor, self.min_size, str(record.fixed))
            moving = _on_fixed_grid(load_image(record.moving), fixed, Interpolation.LINEAR)
            if self.has_masks:
                ones = np.ones(fixed.shape, np.float32)
                masks = tuple(ones if m is None else m for m in load_masks(record, fixed))
                images = (moving.array, fixed.array)
                arrays = tuple(normalize_intensity(a, m > 0, self.hu_curve) for a, m in zip(images, masks)) + masks
            else:
                arrays = tuple(normalize_intensity(a, hu_curve=self.hu_curve) for a in (moving.array, fixed.array))
            if self.factor > 1:  # working resolution of the networks: augment and train there
                arrays = tuple(_downsampled(a, self.factor, is_mask=k >= 2) for k, a in enumerate(arrays))
            self._cache[index] = arrays
        return self._cache[index]

    def slice_bounds(self, length: int) -> tuple[int, int]:
        """Inclusive range of slice indices drawn along an axis of ``length`` voxels."""
        lo = int(np.floor(self.slice_range[0] * (length - 1)))
        hi = int(np.ceil(self.slice_range[1] * (length - 1)))
        return lo, max(lo, hi)

    def __getitem__(self, index: int) -> dict[str, Tensor | int]:
        self._calls += 1
        return self.sample(index, self._calls)

    def sample(self, index: int, draw: int, torch_seed: int | None = None) -> dict[str, Tensor | int]:
        """Item ``index`` with the random slice / augmentation number ``draw`` (``__getitem__`` counts
        its calls); a caller that numbers its draws itself (e.g. by training step) repeats exactly
        after a restart. ``torch_seed`` stands in for ``torch.initial_seed()`` (a worker process
        drawing for the training process passes the latter's)."""
        arrays = self.volumes(index)
        fixed = arrays[1]
        rng = np.random.default_rng([self.seed, torch.initial_seed() if torch_seed is None else torch_seed, index, draw])
        if self.dim == 2 and fixed.ndim == 3:
            lo, hi = self.slice_bounds(fixed.shape[self.slice_axis])
            k = int(rng.integers(lo, hi + 1))
            arrays = tuple(np.take(a, k, axis=self.slice_axis) for a in arrays)
        # copies, so that callers may modify the tensors without touching the cache
        tensors = [torch.from_numpy(np.array(a, dtype=np.float32))[None] for a in arrays]
        if self.augment is not None:
            ddf = random_deformation(tuple(arrays[1].shape), self.augment, rng)
            moving_mask = tensors[2].to(torch.int64) if self.has_masks else None
            tensors[0], moving_mask = apply_deformation(tensors[0], moving_mask, ddf)
            if moving_mask is not None:
                tensors[2] = moving_mask.to(torch.float32)
        item: dict[str, Tensor | int] = {"moving": tensors[0], "fixed": tensors[1], "index": index}
        if self.has_masks:
            item["moving_mask"], item["fixed_mask"] = tensors[2], tensors[3]
        return item


def _downsampled(array: np.ndarray, factor: int, is_mask: bool) -> np.ndarray:
    """``array`` on the coarse grid of :func:`innreg.core.filters.downsample`; masks stay in {0, 1}."""
    out = downsample(torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))[None, None], factor)[0, 0].numpy()
    return (out > 0.5).astype(np.float32) if is_mask else out


def pad_collate(batch: Sequence[dict[str, Tensor | int]]) -> dict[str, Tensor]:
    """Stack items of different sizes by zero-padding each at the end of every axis to the largest.

    Returns:
        ``{"moving": (N, 1, *S_max), "fixed": (N, 1, *S_max), "index": (N,), "shape": (N, dim)}``,
        where ``shape`` holds each item's original spatial size (to crop results back), plus
        ``"moving_mask"`` and ``"fixed_mask"`` (padding reads 0) when the items have masks.
    """
    if not batch:
        raise ValueError("pad_collate: empty batch")
    shapes = [tuple(item["fixed"].shape[1:]) for item in batch]
    target = tuple(max(s[k] for s in shapes) for k in range(len(shapes[0])))

    def pad(x: Tensor) -> Tensor:
        # F.pad lists (before, after) pairs from the last axis backwards.
        widths = [w for k in reversed(range(len(target))) for w in (0, target[k] - x.shape[1 + k])]
        return torch.nn.functional.pad(x, widths)

    images = [key for key in ("moving", "fixed", "moving_mask", "fixed_mask") if key in batch[0]]
    return {key: torch.stack([pad(item[key]) for item in batch]) for key in images} | {
        "index": torch.tensor([int(item["index"]) for item in batch]),
        "shape": torch.tensor(shapes),
    }
