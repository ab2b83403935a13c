"""Shared fixtures for the innreg.data tests: tiny images and NIfTI files with known geometry."""

from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

# A rotated, anisotropic, shifted voxel-to-world matrix, so that geometry bugs show.
_AFFINE = np.array(
    [
        [0.0, -1.5, 0.0, 12.0],
        [0.8, 0.0, 0.0, -7.0],
        [0.0, 0.0, 2.0, 3.5],
        [0.0, 0.0, 0.0, 1.0],
    ]
)


@pytest.fixture
def affine() -> np.ndarray:
    """Voxel-to-world matrix with voxel sizes (0.8, 1.5, 2.0) along the three voxel axes."""
    return _AFFINE.copy()


@pytest.fixture
def write_nifti() -> Callable[..., Path]:
    """``write_nifti(path, data, affine=<the affine fixture>) -> path`` via plain nibabel."""

    def write(path: Path, data: np.ndarray, affine: np.ndarray = _AFFINE) -> Path:
        nib.save(nib.Nifti1Image(np.asarray(data), affine), str(path))
        return path

    return write


@pytest.fixture
def ramp2d() -> np.ndarray:
    """12 x 14 float image with distinct values."""
    return np.arange(12 * 14, dtype=np.float32).reshape(12, 14) / 7.0


@pytest.fixture
def ramp3d() -> np.ndarray:
    """8 x 10 x 6 float volume with distinct values."""
    return np.arange(8 * 10 * 6, dtype=np.float32).reshape(8, 10, 6) / 5.0
