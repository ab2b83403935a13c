"""Shared helpers for the innreg.data tests: tiny NIfTI files with known geometry."""

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

# A rotated, anisotropic, shifted voxel-to-world matrix, so that geometry bugs show.
AFFINE = np.array(
    [
        [0.0, -1.5, 0.0, 12.0],
        [0.8, 0.0, 0.0, -7.0],
        [0.0, 0.0, 2.0, 3.5],
        [0.0, 0.0, 0.0, 1.0],
    ]
)


def write_nifti(path: Path, data: np.ndarray, affine: np.ndarray = AFFINE) -> Path:
    nib.save(nib.Nifti1Image(np.asarray(data), affine), str(path))
    return path


@pytest.fixture
def ramp2d() -> np.ndarray:
    """12 x 14 float image with distinct values."""
    return np.arange(12 * 14, dtype=np.float32).reshape(12, 14) / 7.0


@pytest.fixture
def ramp3d() -> np.ndarray:
    """8 x 10 x 6 float volume with distinct values."""
    return np.arange(8 * 10 * 6, dtype=np.float32).reshape(8, 10, 6) / 5.0
