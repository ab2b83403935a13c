"""The demons update: hand-computed values, slabs, and the update at the velocity grid's points."""

from __future__ import annotations

import pytest
import torch

from innreg import demons
from innreg.config import FineUpdate, RefineConfig
from innreg.core.filters import gaussian_smooth, spatial_gradient
from innreg.demons import LevelUpdate, demons_update, gauss_newton_step, residual_and_gradient


def test_demons_update_hand_computed():
    # moved = 0.5 j + 0.1 and target = 0.5 j: residual 0.1, gradient (0, 0.5) everywhere. The step is
    # -r g / (|g|^2 / dim + damping r^2) = -0.1 * 0.5 / (0.25 / 2 + 0.025 * 0.01) along axis 1.
    _, j = torch.meshgrid(torch.arange(6.0), torch.arange(7.0), indexing="ij")
    target = (0.5 * j)[None, None]
    moved = target + 0.1
    update = demons_update(moved, target, RefineConfig(residual_damping=0.025))
    assert update.shape == (1, 2, 6, 7)
    torch.testing.assert_close(update[0, 0], torch.zeros(6, 7))
    torch.testing.assert_close(update[0, 1], torch.full((6, 7), -0.05 / 0.12525))
    # Matched images give no update.
    assert not demons_update(target, target, RefineConfig()).any()


@pytest.mark.parametrize("shape", [(1, 3, 9, 7), (1, 2, 6, 5, 4)])
def test_esm_gradient_is_the_mean_of_both_gradients(shape):
    # Computed as the gradient of the mean image: the same as the mean of the two gradients (central
    # differences inside, one-sided at the border), and the residual is moved - target.
    generator = torch.Generator().manual_seed(2)
    moved, target = (torch.rand(shape, generator=generator) for _ in range(2))
    residual, gradient = residual_and_gradient(moved, target)
    torch.testing.assert_close(residual, moved - target)
    torch.testing.assert_close(gradient, (spatial_gradient(moved) + spatial_gradient(target)) / 2)


def test_demons_update_in_slabs_matches_one_piece(monkeypatch):
    # Slabs of 3 rows (the last one shorter) with their one-row halo give the update of the whole volume,
    # masked or not; without the halo the central differences at the slab borders would differ.
    generator = torch.Generator().manual_seed(3)
    moved, target = (torch.rand(1, 4, 11, 6, 5, generator=generator) for _ in range(2))
    weight = torch.rand(1, 1, 11, 6, 5, generator=generator)
    config = RefineConfig()
    whole = [demons_update(moved, target, config, w) for w in (None, weight)]
    monkeypatch.setattr(demons, "_SLAB_VOXELS", 3 * 6 * 5)
    for w, expected in zip((None, weight), whole):
        in_slabs = demons_update(moved, target, config, w)
        torch.testing.assert_close(in_slabs, expected, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("grid", [(4, 5), (4, 5, 3)])
def test_update_at_the_grid_points_is_the_update_on_every_voxel_read_there(grid):
    # A level of 2g - 1 voxels per axis puts the grid's points on every second voxel, where resizing the
    # per-voxel update onto the grid reads those voxels alone. At the identity the warped features are the
    # features, so their central differences are the gradient read at the points: both updates agree,
    # masks included (without the pooling of the points' steps).
    level = tuple(2 * g - 1 for g in grid)
    generator = torch.Generator().manual_seed(5)
    source, target = (torch.rand(1, 3, *level, generator=generator) for _ in range(2))
    fixed_mask, moving_mask = (torch.rand(1, 1, *level, generator=generator) for _ in range(2))
    velocity = torch.zeros(1, len(grid), *grid)
    updates = [
        LevelUpdate(source, target, grid, RefineConfig(fine_update=mode, grid_pool_sigma=0.0), fixed_mask, moving_mask)(
            velocity
        )
        for mode in (FineUpdate.VOXELS, FineUpdate.GRID)
    ]
    assert updates[1].shape == (1, len(grid), *grid) and updates[1].abs().max() > 0.01
    torch.testing.assert_close(updates[1], updates[0], rtol=1e-5, atol=1e-6)


def test_update_at_the_grid_points_follows_the_velocity():
    # The moving image is the fixed one a fine voxel on along axis 1 (moving(j) = fixed(j + 1)): a velocity
    # of -0.5 coarse voxels there, the same shift, leaves (almost) no update at the interior points; the
    # identity gets a step towards it.
    i, j = torch.meshgrid(torch.linspace(0, 3, 17), torch.linspace(0, 3, 21), indexing="ij")
    image = lambda shift: (torch.sin(i) + torch.cos(j + shift * 3 / 20))[None, None]  # noqa: E731
    config = RefineConfig(fine_update=FineUpdate.GRID, grid_pool_sigma=0.0)
    update = LevelUpdate(image(1.0), image(0.0), (9, 11), config)
    aligned = torch.zeros(1, 2, 9, 11)
    aligned[:, 1] = -0.5
    interior = (Ellipsis, slice(1, -1), slice(1, -1))
    assert update(aligned)[interior].abs().max() < 0.02
    step = update(torch.zeros(1, 2, 9, 11))[interior][:, 1]
    assert (step < 0).all() and step.mean() < -0.2


def test_pooling_smooths_the_steps_numerator_and_denominator_before_dividing():
    # One point with a residual: unpooled, only it moves; pooled (sigma 1), its neighbours move too, and
    # the pooled step is the ratio of the smoothed numerator and denominator.
    residual = torch.zeros(1, 2, 9, 9)
    residual[..., 4, 4] = 0.2
    gradient = torch.ones(1, 2, 2, 9, 9)
    config = RefineConfig(residual_damping=0.025)
    # Clones: the step consumes its residual and gradient.
    alone = gauss_newton_step(residual.clone(), gradient.clone(), config, None)
    assert alone[..., 4, 3].abs().max() == 0 < alone[..., 4, 4].abs().min()
    pooled = gauss_newton_step(residual.clone(), gradient.clone(), config, None, pool_sigma=1.0)
    numerator = torch.zeros(1, 2, 9, 9)
    numerator[..., 4, 4] = 0.4  # sum over 2 channels of r * g along each axis
    denominator = 2.0 + torch.zeros(1, 1, 9, 9)  # |g|^2 summed over channels and axes, / dim
    denominator[..., 4, 4] += 0.025 * 2 * 0.04
    expected = -gaussian_smooth(numerator, 1.0) / (gaussian_smooth(denominator, 1.0) + 1e-6)
    torch.testing.assert_close(pooled, expected)
    assert pooled[..., 4, 3].abs().min() > 0.01
