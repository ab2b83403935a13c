"""Shared fixtures for the field-maths tests: a fixed seed and random smooth fields."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter


def _smooth_field(shape: tuple[int, ...], amplitude: float, sigma: float, seed: int = 0) -> torch.Tensor:
    """``(1, dim, *shape)`` Gaussian-smoothed noise scaled so that ``max |field| == amplitude`` voxels."""
    rng = np.random.default_rng(seed)
    field = np.stack([gaussian_filter(rng.standard_normal(shape), sigma) for _ in shape])
    field *= amplitude / np.abs(field).max()
    return torch.tensor(field, dtype=torch.float32).unsqueeze(0)


@pytest.fixture(autouse=True)
def _seed():
    """Fixed seed (the suite-wide conftest already runs torch on one thread)."""
    torch.manual_seed(0)


@pytest.fixture
def smooth_field():
    """Factory of random smooth fields: ``smooth_field(shape, amplitude, sigma, seed=0)``."""
    return _smooth_field
