"""Pair manifests, the training dataset and whole-image pair loading.

A manifest is a CSV file with a header row and the columns ``moving`` and ``fixed`` (required) and
``moving_seg``, ``fixed_seg``, ``true_ddf``, ``moving_as_fixed`` (optional; empty cells allowed;
``moving_as_fixed`` is the moving anatomy imaged in the fixed contrast, the translation's truth). Relative paths are
resolved against the CSV file's folder; other columns are ignored.
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
from innreg.data.intensity import Interpolation, normalize_percentile, resample_to
from innreg.data.io import Image, load_image, load_labels
from innreg.errors import InnregInputError

REQUIRED_COLUMNS = ("moving", "fixed")
OPTIONAL_COLUMNS = ("moving_seg", "fixed_seg", "true_ddf", "moving_as_fixed")


@dataclass(frozen=True)
class PairRecord:
    """Paths of one registration pair (strings are converted to :class:`~pathlib.Path`)."""

    moving: Path
    fixed: Path
    moving_seg: Path | None = None
    fixed_seg: Path | None = None
    true_ddf: Path | None = None
    moving_as_fixed: Path | None = None

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None and not isinstance(value, Path):
                object.__setattr__(self, f.name, Path(value))


def read_manifest(csv_path: str | os.PathLike) -> list[PairRecord]:
    """Read a pair manifest (see the module docstring).

    Raises:
        InnregInputError: the CSV is missing or has no rows, a required column is missing, a
            required cell is empty, or a listed file does not exist (the message names the row).
    """
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise InnregInputError(f"{csv_path}: manifest file not found")
    with csv_path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        header = [h.strip() for h in (reader.fieldnames or [])]
        for column in REQUIRED_COLUMNS:
            if column not in header:
                columns = ", ".join(header) or "none"
                raise InnregInputError(f"{csv_path}: manifest has no '{column}' column (columns: {columns})")
        rows = [{(k or "").strip(): (v or "").strip() for k, v in row.items()} for row in reader]
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


class PairDataset(Dataset):
    """Training pairs as tensors normalised to ``[0, 1]`` (percentiles 1/99 of each image).

    Each item is ``{"moving": (1, *S) float32, "fixed": (1, *S) float32, "index": int}`` on the fixed
    image's grid (the moving image is resampled onto it when needed).

    * ``dim=2`` and 3D volumes: one slice drawn at random along ``slice_axis`` (of the loaded
      array) between the fractions ``slice_range`` of its length; the same slice of both images.
    * ``dim=2`` and 2D images, or ``dim=3`` and 3D volumes: the whole image.
    * ``augment``: a random affine + elastic deformation (:func:`random_deformation`) of the moving
      image only; ``True`` uses the default :class:`DeformationParams`.

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
        self._cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._calls = 0

    def __len__(self) -> int:
        return len(self.records)

    def volumes(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Normalised ``(moving, fixed)`` arrays of a pair on the fixed grid (cached)."""
        if index not in self._cache:
            record = self.records[index]
            fixed = load_image(record.fixed)
            if self.dim == 3 and fixed.dim == 2:
                raise InnregInputError(f"{record.fixed}: 2D image, but the dataset was built with dim=3")
            moving = _on_fixed_grid(load_image(record.moving), fixed, Interpolation.LINEAR)
            self._cache[index] = (normalize_percentile(moving.array), normalize_percentile(fixed.array))
        return self._cache[index]

    def slice_bounds(self, length: int) -> tuple[int, int]:
        """Inclusive range of slice indices drawn along an axis of ``length`` voxels."""
        lo = int(np.floor(self.slice_range[0] * (length - 1)))
        hi = int(np.ceil(self.slice_range[1] * (length - 1)))
        return lo, max(lo, hi)

    def __getitem__(self, index: int) -> dict[str, Tensor | int]:
        moving, fixed = self.volumes(index)
        self._calls += 1
        rng = np.random.default_rng([self.seed, torch.initial_seed(), index, self._calls])
        if self.dim == 2 and fixed.ndim == 3:
            lo, hi = self.slice_bounds(fixed.shape[self.slice_axis])
            k = int(rng.integers(lo, hi + 1))
            moving, fixed = (np.take(a, k, axis=self.slice_axis) for a in (moving, fixed))
        # copies, so that callers may modify the tensors without touching the cache
        moving_t = torch.from_numpy(np.array(moving, dtype=np.float32))[None]
        fixed_t = torch.from_numpy(np.array(fixed, dtype=np.float32))[None]
        if self.augment is not None:
            ddf = random_deformation(tuple(fixed.shape), self.augment, rng)
            moving_t = apply_deformation(moving_t, None, ddf)[0]
        return {"moving": moving_t, "fixed": fixed_t, "index": index}


def pad_collate(batch: Sequence[dict[str, Tensor | int]]) -> dict[str, Tensor]:
    """Stack items of different sizes by zero-padding each at the end of every axis to the largest.

    Returns:
        ``{"moving": (N, 1, *S_max), "fixed": (N, 1, *S_max), "index": (N,), "shape": (N, dim)}``,
        where ``shape`` holds each item's original spatial size (to crop results back).
    """
    if not batch:
        raise ValueError("pad_collate: empty batch")
    shapes = [tuple(item["fixed"].shape[1:]) for item in batch]
    target = tuple(max(s[k] for s in shapes) for k in range(len(shapes[0])))

    def pad(x: Tensor) -> Tensor:
        # F.pad lists (before, after) pairs from the last axis backwards.
        widths = [w for k in reversed(range(len(target))) for w in (0, target[k] - x.shape[1 + k])]
        return torch.nn.functional.pad(x, widths)

    return {
        "moving": torch.stack([pad(item["moving"]) for item in batch]),
        "fixed": torch.stack([pad(item["fixed"]) for item in batch]),
        "index": torch.tensor([int(item["index"]) for item in batch]),
        "shape": torch.tensor(shapes),
    }
