"""Gaussian smoothing and spatial gradients against SciPy and hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

from innreg.core.filters import box_mean, gaussian_smooth, spatial_gradient


@pytest.mark.parametrize("shape", [(17, 12), (9, 11, 7)])
def test_gaussian_smooth_matches_scipy_with_replicate_border(shape):
    x = torch.rand(1, 2, *shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    out = gaussian_smooth(x, 1.5)
    for c in range(2):
        # scipy's "nearest" border is replicate padding; truncate=3 matches our kernel radius ceil(3 sigma).
        expected = ndimage.gaussian_filter(x[0, c].numpy(), 1.5, mode="nearest", truncate=3.0)
        np.testing.assert_allclose(out[0, c].numpy(), expected, atol=1e-12)


def test_gaussian_smooth_keeps_constants_and_zero_sigma_is_identity():
    constant = torch.full((1, 3, 10, 8), 2.5)
    torch.testing.assert_close(gaussian_smooth(constant, 2.0), constant)
    x = torch.rand(1, 1, 6, 5)
    assert gaussian_smooth(x, 0.0) is x


def test_spatial_gradient_of_a_linear_ramp_is_its_slope():
    # f(i, j, k) = 2 i - 3 j + 0.5 k: central and one-sided differences are exact.
    i, j, k = torch.meshgrid(torch.arange(5.0), torch.arange(6.0), torch.arange(4.0), indexing="ij")
    grad = spatial_gradient((2 * i - 3 * j + 0.5 * k)[None, None])
    assert grad.shape == (1, 1, 3, 5, 6, 4)
    for axis, slope in enumerate((2.0, -3.0, 0.5)):
        torch.testing.assert_close(grad[0, 0, axis], torch.full((5, 6, 4), slope))


def test_spatial_gradient_hand_computed_2d():
    x = torch.tensor([[0.0, 1.0, 4.0], [2.0, 3.0, 8.0]])[None, None]
    grad = spatial_gradient(x)[0, 0]
    # Axis 0 has two rows: one-sided difference; axis 1: one-sided at the ends, central inside.
    torch.testing.assert_close(grad[0], torch.tensor([[2.0, 2.0, 4.0], [2.0, 2.0, 4.0]]))
    torch.testing.assert_close(grad[1], torch.tensor([[1.0, 2.0, 3.0], [1.0, 3.0, 5.0]]))


@pytest.mark.parametrize("shape", [(2, 5), (7, 9), (3, 4, 6)])
def test_spatial_gradient_equals_torch_gradient(shape):
    x = torch.rand(2, 3, *shape, generator=torch.Generator().manual_seed(0))
    expected = torch.stack(torch.gradient(x, dim=tuple(range(2, x.dim()))), dim=2)
    torch.testing.assert_close(spatial_gradient(x), expected)


@pytest.mark.parametrize("shape", [(1, 1, 8), (1, 1, 1, 6)])
def test_spatial_gradient_rejects_1d_and_single_voxel_axes(shape):
    with pytest.raises(ValueError, match="spatial"):
        spatial_gradient(torch.rand(*shape))


@pytest.mark.parametrize("shape, radius", [((2, 3, 9, 7), 1), ((1, 2, 6, 5, 7), 1), ((1, 1, 8, 9), 2)])
def test_box_mean_matches_scipy_uniform_filter_with_replicate_border(shape, radius):
    x = torch.rand(shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    size = (1, 1) + (2 * radius + 1,) * (len(shape) - 2)
    expected = ndimage.uniform_filter(x.numpy(), size=size, mode="nearest")
    np.testing.assert_allclose(box_mean(x, radius).numpy(), expected, atol=1e-12)


def test_box_mean_hand_computed_and_radius_zero_is_identity():
    x = torch.tensor([[[[0.0, 3.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 9.0]]]])
    # Centre: the mean of all nine. Corner (0, 0): its box reads rows 0, 0, 1 and columns 0, 0, 1 (replicate).
    out = box_mean(x, 1)
    assert out[0, 0, 1, 1].item() == pytest.approx(12.0 / 9)
    assert out[0, 0, 0, 0].item() == pytest.approx(6.0 / 9)
    assert box_mean(x, 0) is x


@pytest.mark.parametrize("shape", [(2, 3, 6, 7), (1, 2, 5, 6, 4)])
def test_spatial_gradient_scale_is_a_factor_on_every_value(shape):
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(3))
    assert torch.equal(spatial_gradient(x, scale=0.5), spatial_gradient(x) * 0.5)  # a power of two: exact
    torch.testing.assert_close(spatial_gradient(x, scale=3.0), spatial_gradient(x) * 3.0)
