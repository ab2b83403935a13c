"""Shared fixtures for the network tests: random smooth fields."""

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
def _seed_and_single_thread():
    """Fixed seed; one intra-op thread, since tiny test tensors only pay for thread synchronisation
    (and OpenMP spin-waits stall badly when other processes share the cores)."""
    torch.manual_seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def smooth_field():
    """Factory of random smooth fields: ``smooth_field(shape, amplitude, sigma, seed=0)``."""
    return _smooth_field
