"""Warping, integration, composition and inversion of displacement fields (innreg.core.warp)."""

from __future__ import annotations

import pytest
import torch

from innreg.metrics import jacobian_determinant
from innreg.core.warp import (
    compose,
    identity_grid,
    integrate_velocity,
    invert_field,
    sample_on_grid,
    similarity_weight,
    warp,
)

CASES = [(12, 14), (8, 10, 6)]


@pytest.mark.parametrize("shape", CASES)
def test_zero_field_warps_to_identity(shape):
    image = torch.rand(2, 3, *shape)
    ddf = torch.zeros(2, len(shape), *shape)
    torch.testing.assert_close(warp(image, ddf), image)


def test_constant_shift_matches_hand_computed_values():
    image = torch.arange(20.0).view(1, 1, 4, 5)
    ddf = torch.zeros(1, 2, 4, 5)
    ddf[:, 1] = 1.0  # read one voxel to the right along axis 1
    out = warp(image, ddf)
    torch.testing.assert_close(out[0, 0, :, :4], image[0, 0, :, 1:])
    assert torch.all(out[0, 0, :, 4] == 0)  # outside the grid reads zero
    ddf[:, 1] = 0.5  # half a voxel: the last column mixes the image's edge with what lies outside
    filled = warp(image, ddf, fill=-1000.0)[0, 0]
    torch.testing.assert_close(filled[:, :4], (image[0, 0, :, :4] + image[0, 0, :, 1:]) / 2)
    torch.testing.assert_close(filled[:, 4], (image[0, 0, :, 4] - 1000.0) / 2)


@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.uint8])
def test_label_maps_warp_to_their_exact_values(dtype):
    # Atlas ids beyond float32's 2**24 (e.g. 614454277) would round if sampled as floats.
    ids = [0, 7, 200] if dtype == torch.uint8 else [0, 40000, 16777217, 614454277]
    labels = torch.tensor(ids, dtype=dtype)[torch.arange(20) % len(ids)].view(1, 1, 4, 5)
    ddf = torch.zeros(1, 2, 4, 5)
    ddf[:, 1] = 1.2  # nearest: one voxel to the right
    out = warp(labels, ddf, mode="nearest")
    assert out.dtype == dtype
    torch.testing.assert_close(out[0, 0, :, :4], labels[0, 0, :, 1:], rtol=0, atol=0)
    assert torch.all(out[0, 0, :, 4] == 0)  # outside the grid reads 0
    shifted = labels.to(torch.int64) - 5  # 0 is no longer the smallest value, nor a label at all
    assert torch.all(warp(shifted, ddf, mode="nearest")[0, 0, :, 4] == 0)
    torch.testing.assert_close(warp(shifted, ddf, mode="nearest", fill=-5), out.to(torch.int64) - 5, rtol=0, atol=0)


def test_label_maps_warp_alike_either_side_of_float32s_exact_integers():
    # Values within 2**24 of the fill are sampled directly, others through their sorted distinct values: the
    # same map, shifted up to and across that bound, warps to the same labels either way (outside: the fill).
    generator = torch.Generator().manual_seed(4)
    labels = torch.randint(1, 5, (1, 1, 9, 8), generator=generator)
    ddf = 3 * torch.randn(1, 2, 9, 8, generator=generator)
    small = warp(labels, ddf, mode="nearest")
    assert (small == 0).any() and (small > 0).any()
    for offset in (2**24 - 4, 2**24 - 3, 614454277):  # largest value 2**24 (direct), 2**24 + 1 and beyond (sorted)
        large = warp(labels + offset, ddf, mode="nearest")
        torch.testing.assert_close(large, torch.where(small == 0, 0, small + offset), rtol=0, atol=0)


@pytest.mark.parametrize("shape", CASES)
def test_small_velocity_integrates_to_itself(shape, smooth_field):
    velocity = smooth_field(shape, amplitude=0.05, sigma=2)
    ddf = integrate_velocity(velocity, steps=7)
    assert (ddf - velocity).abs().max() < 2e-3  # exp(v) = v + O(|v| |grad v|)


@pytest.mark.parametrize(("shape", "sigma"), [((32, 32), 3.0), ((16, 16, 16), 2.0)])
def test_integration_of_large_velocity_does_not_fold(shape, sigma, smooth_field):
    velocity = smooth_field(shape, amplitude=6.0, sigma=sigma)
    # The same field used directly as a displacement folds, so the check below is meaningful.
    assert jacobian_determinant(velocity).min() <= 0
    assert jacobian_determinant(integrate_velocity(velocity, steps=7)).min() > 0


@pytest.mark.parametrize("shape", CASES)
def test_compose_matches_sequential_warps(shape, smooth_field):
    image = smooth_field(shape, amplitude=1.0, sigma=1.5, seed=3)[:, :1] + 1.0
    outer = smooth_field(shape, amplitude=1.0, sigma=2.0, seed=1)
    inner = smooth_field(shape, amplitude=1.0, sigma=2.0, seed=2)
    two_steps = warp(warp(image, outer, padding="border"), inner, padding="border")
    one_step = warp(image, compose(outer, inner), padding="border")
    assert (two_steps - one_step).abs().max() < 0.05 * image.abs().max()


@pytest.mark.parametrize("shape", CASES)
def test_compose_of_translations_adds_them(shape):
    dim = len(shape)
    a = torch.full((1, dim, *shape), 0.5)
    b = torch.full((1, dim, *shape), -0.25)
    torch.testing.assert_close(compose(a, b), a + b)


@pytest.mark.parametrize("shape", [(24, 22), (12, 14, 10)])
def test_invert_field_recovers_inverse(shape, smooth_field):
    ddf = smooth_field(shape, amplitude=2.0, sigma=3.0)
    assert jacobian_determinant(ddf).min() > 0.2  # invertible test field
    inverse = invert_field(ddf, iterations=20)
    # inverse then forward map is the identity inside the grid: ddf(x + v(x)) = -v(x)
    assert compose(ddf, inverse).abs().max() < 1e-2
    # and the identity grid round-trips through both warps
    grid = identity_grid(shape).unsqueeze(0)
    round_trip = warp(warp(grid, ddf, padding="border"), inverse, padding="border")
    interior = (slice(None), slice(None)) + tuple(slice(4, s - 4) for s in shape)
    assert (round_trip - grid)[interior].abs().max() < 0.1


def test_invert_field_of_translation_is_negation():
    ddf = torch.full((1, 2, 10, 11), 0.75)
    torch.testing.assert_close(invert_field(ddf), -ddf)


@pytest.mark.parametrize("shape", [(32, 32), (16, 16, 16)])
def test_exp_of_negated_velocity_is_the_inverse(shape, smooth_field):
    velocity = smooth_field(shape, amplitude=3.0, sigma=3.0)
    residual = compose(integrate_velocity(velocity), integrate_velocity(-velocity))
    interior = (slice(None), slice(None)) + tuple(slice(3, s - 3) for s in shape)
    assert residual[interior].abs().max() < 0.05  # vs. displacements of 3 voxels


def test_similarity_weight_pulls_the_moving_mask_and_multiplies_by_the_fixed_mask():
    fixed_mask = torch.ones(1, 1, 6, 8)
    fixed_mask[..., :, :4] = 0
    moving_mask = torch.zeros(1, 1, 6, 8)
    moving_mask[..., :, 5:] = 1
    ddf = torch.zeros(1, 2, 6, 8)
    ddf[:, 1] = 2.0  # out(x) = mask(x + 2 along the last axis)
    weight = similarity_weight(fixed_mask, moving_mask, ddf)
    expected = torch.zeros(1, 1, 6, 8)
    expected[..., :, 4:6] = 1  # moving mask pulled to columns 3..5 (6, 7 read outside: 0), fixed mask from 4
    torch.testing.assert_close(weight, expected)
    assert similarity_weight(None, None, ddf) is None
    torch.testing.assert_close(similarity_weight(fixed_mask, None, ddf), fixed_mask)


def test_sample_on_grid_reads_a_finer_image_at_the_coarse_grids_points():
    # A ramp along the last axis of a 5 x 9 image, read onto a 3 x 5 grid of the same extent: the grid's
    # points sit on every second voxel (corners aligned), and a shift of 0.5 coarse voxels reads one
    # fine voxel further on.
    image = torch.arange(9.0).expand(1, 1, 5, 9)
    ddf = torch.zeros(1, 2, 3, 5)
    torch.testing.assert_close(sample_on_grid(image, ddf), torch.arange(0.0, 9.0, 2.0).expand(1, 1, 3, 5))
    ddf[:, 1] = 0.5
    shifted = sample_on_grid(image, ddf)
    torch.testing.assert_close(shifted[..., :4], torch.arange(1.0, 9.0, 2.0).expand(1, 1, 3, 4))
    torch.testing.assert_close(shifted[..., 4], torch.zeros(1, 1, 3))  # half a voxel beyond the edge, zero-padded
    # The same grid is warp's.
    image = torch.rand(1, 2, 4, 5, 6)
    ddf = torch.randn(1, 3, 4, 5, 6)
    torch.testing.assert_close(sample_on_grid(image, ddf), warp(image, ddf))


def test_warp_still_rejects_an_image_on_another_grid():
    with pytest.raises(ValueError, match="share N and the spatial shape"):
        warp(torch.rand(1, 1, 5, 9), torch.zeros(1, 2, 3, 5))
