"""Per-pair refinement: recovers a known smooth deformation, stays invertible, respects its switches."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from innreg.config import FineUpdate, RefineConfig
from innreg.nn import compose, warp
from innreg.core.affine import affine_ddf
from innreg.core.transform import Transform
from innreg.refinement import optimise_affine, refine_registration


def blobs(shape: tuple[int, ...]) -> torch.Tensor:
    """A smooth test image with structure everywhere (sum of sines), values in [0, 1]."""
    axes = torch.meshgrid(*[torch.linspace(0, 1, s) for s in shape], indexing="ij")
    image = sum(torch.sin(2 * math.pi * (k + 2) * x + k) for k, x in enumerate(axes))
    return ((image - image.min()) / (image.max() - image.min()))[None, None]


def smooth_shift(shape: tuple[int, ...], amplitude: float) -> torch.Tensor:
    """A smooth, non-uniform displacement (voxels), largest in the middle."""
    axes = torch.meshgrid(*[torch.linspace(0, 1, s) for s in shape], indexing="ij")
    bump = math.prod(torch.sin(math.pi * x) for x in axes)
    return torch.stack([amplitude * bump] * len(shape))[None]


def interior(x: torch.Tensor, margin: int = 6) -> torch.Tensor:
    return x[(Ellipsis, *[slice(margin, -margin)] * (x.dim() - 2))]


@pytest.mark.parametrize("fine_update", list(FineUpdate))
def test_recovers_a_known_deformation_from_the_identity(fine_update):
    shape = (48, 40)
    fixed = blobs(shape)
    true = smooth_shift(shape, 2.0)
    # Multi-modal: the moving image has inverted contrast, and fixed = moving warped by `true`.
    moving = 1.0 - warp(fixed, -true)  # approximately warp(moving, true) == 1 - fixed
    # Noise-free images: no pre-smoothing (it costs 0.005 of the relative error here; the noisy test below).
    config = RefineConfig(factors=(2, 1), steps=(10, 10), mind_presmooth=0.0, fine_update=fine_update)
    ddf, inverse = refine_registration(moving, fixed, torch.zeros_like(true), torch.zeros_like(true), config)
    error_before = interior(true).norm(dim=1).mean()
    error_after = interior(ddf - true).norm(dim=1).mean()
    assert error_after < 0.2 * error_before
    # The inverse undoes the map: composing both is close to the identity.
    assert interior(compose(ddf, inverse)).abs().mean() < 0.1


def test_composes_with_the_network_field():
    shape = (40, 40)
    fixed = blobs(shape)
    net = smooth_shift(shape, 1.5)
    moving = warp(fixed, -net)
    config = RefineConfig(factors=(1,), steps=(15,), grid_factor=2)
    ddf, _ = refine_registration(moving, fixed, net, None, config)
    # Starting from the right answer, refinement stays close to it.
    assert interior(ddf - net).norm(dim=1).mean() < 0.3


def test_zero_steps_keep_the_network_field():
    shape = (24, 20)
    net = smooth_shift(shape, 1.0)
    config = RefineConfig(factors=(2,), steps=(0,), affine_steps=(0, 0))
    ddf, inverse = refine_registration(blobs(shape), blobs(shape), net, -net, config)
    torch.testing.assert_close(ddf, net)
    torch.testing.assert_close(inverse, -net)


def test_three_dimensional_pair_runs():
    shape = (12, 14, 10)
    fixed = blobs(shape)
    ddf, inverse = refine_registration(fixed, fixed, torch.zeros(1, 3, *shape), torch.zeros(1, 3, *shape),
                                       RefineConfig(factors=(2, 1), steps=(2, 2)))  # fmt: skip
    assert ddf.shape == inverse.shape == (1, 3, *shape) and torch.isfinite(ddf).all()


def test_rejects_batches():
    image = torch.rand(2, 1, 16, 16)
    with pytest.raises(ValueError, match="one pair"):
        refine_registration(image, image, torch.zeros(2, 2, 16, 16), None, RefineConfig())


def test_affine_transform_is_the_affine_field_and_its_inverse():
    shape = (20, 24)
    angle = torch.tensor(0.1)
    matrix = torch.stack([torch.stack([angle.cos(), -angle.sin()]), torch.stack([angle.sin(), angle.cos()])])[None]
    affine = Transform.from_affine(matrix, torch.tensor([[1.5, -2.0]]), shape)
    assert interior(compose(affine.ddf, affine.inverse), 4).abs().max() < 1e-3
    zero = Transform.identity(torch.zeros(1, 1, *shape))
    assert zero.ddf.shape == (1, 2, *shape) and not zero.ddf.any() and not zero.inverse.any()


def test_affine_stage_recovers_a_rotation_and_shift():
    shape = (64, 56)
    # Smoothed noise: structure without the periodicity of `blobs`, which admits near-equivalent scalings.
    fixed = torch.rand(1, 1, *shape, generator=torch.Generator().manual_seed(0))
    for _ in range(3):
        fixed = F.avg_pool2d(F.pad(fixed, (2, 2, 2, 2), mode="replicate"), 5, 1)
    fixed = (fixed - fixed.min()) / (fixed.max() - fixed.min())
    angle = torch.tensor(0.08)
    matrix = torch.stack([torch.stack([angle.cos(), -angle.sin()]), torch.stack([angle.sin(), angle.cos()])])[None]
    shift = torch.tensor([[3.0, -2.0]])
    true = affine_ddf(matrix, shift, shape)
    moving = 1.0 - warp(fixed, Transform.from_affine(matrix, shift, shape).inverse)  # fixed = moving warped by true
    found_matrix, found_shift = optimise_affine(moving, fixed, RefineConfig(affine_factors=(2, 1), affine_steps=(10, 10)))
    error = interior(affine_ddf(found_matrix, found_shift, shape) - true, 8).norm(dim=1).mean()
    assert error < 0.2 * interior(true, 8).norm(dim=1).mean()


def test_affine_stage_recovers_a_shift_in_3d():
    shape = (24, 20, 22)
    fixed = torch.rand(1, 1, *shape, generator=torch.Generator().manual_seed(1))
    for _ in range(3):
        fixed = F.avg_pool3d(F.pad(fixed, (1,) * 6, mode="replicate"), 3, 1)
    shift = torch.tensor([[1.5, -1.0, 2.0]])
    eye = torch.eye(3)[None]
    # fixed = moving warped by the shift (border padding: no bright band at the edge of the inverted image).
    moving = 1.0 - warp(fixed, affine_ddf(eye, -shift, shape), padding="border")
    matrix, found = optimise_affine(moving, fixed, RefineConfig(affine_factors=(2, 1), affine_steps=(8, 8)))
    torch.testing.assert_close(found, shift, atol=0.1, rtol=0)
    torch.testing.assert_close(matrix, eye, atol=0.03, rtol=0)


def test_affine_stage_rejects_a_step_that_scales_the_area_by_more_than_two(monkeypatch):
    # Force a diverged Gauss-Newton step (A + 5 everywhere: determinant 11); the stage keeps the identity.
    monkeypatch.setattr(torch.linalg, "solve", lambda normal, rhs: -torch.tensor([5.0, 5.0, 5.0, 5.0, 1.0, 1.0]))
    image = blobs((24, 20))
    matrix, translation = optimise_affine(image, image, RefineConfig(affine_factors=(1,), affine_steps=(3,)))
    torch.testing.assert_close(matrix, torch.eye(2)[None])
    assert not translation.any()


@pytest.mark.parametrize("channel", ["translated", "fixed_translated"])
def test_an_intensity_channel_follows_its_image(channel):
    # The translated image T(moving) (or T^-1(fixed), the inverse channel) is aligned by another field
    # than the raw pair's structure: MIND alone follows the structure, a heavily weighted intensity
    # channel follows the translation, so both channels are wired in.
    shape = (48, 40)
    fixed = blobs(shape)
    true, other = smooth_shift(shape, 2.0), smooth_shift(shape, -2.0)
    moving = 1.0 - warp(fixed, -true)
    image = warp(fixed, -other) if channel == "translated" else warp(moving, other)
    weight_key = "translation_weight" if channel == "translated" else "inverse_weight"
    zero = torch.zeros_like(true)
    results = {}
    levels = {"affine_steps": (6, 3), "factors": (2, 1), "steps": (10, 10)}  # converged on these shifts
    for weight in (0.0, 1000.0):
        config = RefineConfig(**levels, **{weight_key: weight})
        results[weight], _ = refine_registration(moving, fixed, zero, None, config, **{channel: image})
    assert interior(results[0.0] - true).norm(dim=1).mean() < 0.25 * interior(true).norm(dim=1).mean()
    assert interior(results[1000.0] - other).norm(dim=1).mean() < 0.25 * interior(other).norm(dim=1).mean()
    plain, _ = refine_registration(moving, fixed, zero, None, RefineConfig(**levels))
    torch.testing.assert_close(results[0.0], plain)  # weight 0: the channel is not there


def test_inverse_channel_appends_the_raw_image_and_the_fixed_image_translated_back():
    from innreg.refinement import _descriptors

    warped = torch.rand(1, 2, 16, 12, generator=torch.Generator().manual_seed(2))
    fixed, back = torch.rand(2, 1, 16, 12, generator=torch.Generator().manual_seed(3)).split(1)
    level, config = (8, 6), RefineConfig(inverse_weight=4.0)
    source, target = _descriptors(warped, fixed, level, config, back)
    shipped_source, shipped_target = _descriptors(warped, fixed, level, RefineConfig())
    torch.testing.assert_close(source[:, :-1], shipped_source)
    torch.testing.assert_close(target[:, :-1], shipped_target)
    torch.testing.assert_close(source[:, -1:], 2.0 * F.interpolate(warped[:, :1], size=level, mode="area"))
    torch.testing.assert_close(target[:, -1:], 2.0 * F.interpolate(back, size=level, mode="area"))


def test_translated_image_must_match_the_moving_image():
    image = blobs((16, 16))
    with pytest.raises(ValueError, match="translated"):
        refine_registration(image, image, torch.zeros(1, 2, 16, 16), None, RefineConfig(), translated=image[..., :8])


def test_settings_keep_their_size_in_mm_on_coarser_voxels_and_in_voxels_on_finer_ones():
    from innreg.refinement import for_spacing

    config = RefineConfig(smooth_sigma=2.0, mind_dilation=2, mind_presmooth=0.8, reference_spacing=1.0)
    coarse = for_spacing(config, (2.0, 2.0, 2.0))
    assert coarse.smooth_sigma == 1.0 and coarse.mind_dilation == 1 and coarse.mind_presmooth == 0.4
    assert for_spacing(config, (1.0, 3.0)).smooth_sigma == 1.0  # the mean voxel size counts
    fine = for_spacing(config, (0.5, 0.5))
    assert fine.smooth_sigma == 2.0 and fine.mind_dilation == 2 and fine.mind_presmooth == 0.8
    assert for_spacing(config, (8.0, 8.0)).mind_dilation == 1  # never below one voxel
    assert for_spacing(config, None) is config
    assert for_spacing(RefineConfig(reference_spacing=0.0), (2.0, 2.0)).smooth_sigma == RefineConfig().smooth_sigma


def test_refinement_at_the_reference_spacing_is_the_refinement_in_voxels():
    shape = (32, 28)
    fixed = blobs(shape)
    moving = warp(fixed, torch.full((1, 2, *shape), 1.0))
    zero = torch.zeros(1, 2, *shape)
    config = RefineConfig(factors=(2, 1), steps=(3, 3), reference_spacing=1.3)
    at_reference, _ = refine_registration(moving, fixed, zero, None, config, spacing=(1.3, 1.3))
    in_voxels, _ = refine_registration(moving, fixed, zero, None, config)
    coarser, _ = refine_registration(moving, fixed, zero, None, config, spacing=(2.6, 2.6))
    finer, _ = refine_registration(moving, fixed, zero, None, config, spacing=(0.65, 0.65))
    torch.testing.assert_close(at_reference, in_voxels)
    torch.testing.assert_close(finer, in_voxels)  # finer voxels keep the sizes in voxels
    assert not torch.allclose(coarser, in_voxels)


def test_mind_presmooth_smooths_the_images_before_mind_at_each_levels_scale():
    from innreg.core.filters import gaussian_smooth
    from innreg.losses import mind_descriptor
    from innreg.refinement import _features

    images = torch.rand(1, 2, 32, 24, generator=torch.Generator().manual_seed(0))
    level, config = (16, 12), RefineConfig(mind_presmooth=1.2, translation_weight=4.0)
    small = F.interpolate(images, size=level, mode="area")
    features = _features(images, level, config)
    expected_mind = mind_descriptor(gaussian_smooth(small[:, :1], 0.6), config.mind_radius, config.mind_dilation)
    torch.testing.assert_close(features[:, :-1], expected_mind)
    torch.testing.assert_close(features[:, -1:], 2.0 * small[:, 1:])  # the intensity channel is not smoothed
    unsmoothed = _features(images, level, RefineConfig(mind_presmooth=0.0))
    torch.testing.assert_close(unsmoothed[:, :-1], mind_descriptor(small[:, :1], config.mind_radius, config.mind_dilation))


def test_mind_presmooth_registers_noisy_images_better():
    shape = (48, 40)
    fixed = blobs(shape)
    moving = warp(fixed, smooth_shift(shape, 2.0))
    errors = {0.0: 0.0, 0.7: 0.0}
    for seed in range(4):
        noise = torch.Generator().manual_seed(seed)
        noisy_fixed = fixed + 0.15 * torch.randn(fixed.shape, generator=noise)
        noisy_moving = moving + 0.15 * torch.randn(moving.shape, generator=noise)
        for presmooth in errors:
            config = RefineConfig(mind_presmooth=presmooth)
            ddf, _ = refine_registration(noisy_moving, noisy_fixed, torch.zeros(1, 2, *shape), None, config)
            errors[presmooth] += interior((warp(moving, ddf) - fixed).abs()).mean().item()
    assert errors[0.7] < 0.95 * errors[0.0]


def test_conditional_mean_recovers_a_grey_value_map():
    from innreg.refinement import conditional_mean

    x = torch.rand(1, 1, 50, 40, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(conditional_mean(x, 1 - x, 32), 1 - x, atol=0.02, rtol=0)  # linear weights blur by < 1 bin
    classes = (torch.rand(1, 1, 30, 30, generator=torch.Generator().manual_seed(1)) > 0.5).float()
    torch.testing.assert_close(conditional_mean(0.2 + 0.5 * classes, classes, 16), classes)  # bin centres: exact
    mixed = conditional_mean(torch.full((1, 1, 4, 4), 0.5), torch.arange(16.0).view(1, 1, 4, 4), 8)
    torch.testing.assert_close(mixed, torch.full((1, 1, 4, 4), 7.5))  # one grey value: the mean of its targets


def test_remap_turns_a_translation_with_the_wrong_contrast_into_a_guide():
    # A "translation" that kept the moving image's inverted contrast misleads a heavily weighted intensity
    # channel; remapped to the fixed intensity it predicts (refine.remap_bins) it guides the alignment.
    shape = (48, 40)
    fixed = blobs(shape)
    true = smooth_shift(shape, 2.0)
    moving = 1.0 - warp(fixed, -true)
    zero = torch.zeros_like(true)
    errors = {}
    for bins in (0, 32):
        config = RefineConfig(factors=(2, 1), steps=(10, 10), translation_weight=1000.0, remap_bins=bins)
        ddf, _ = refine_registration(moving, fixed, zero, None, config, translated=moving)
        errors[bins] = interior(ddf - true).norm(dim=1).mean()
    assert errors[32] < 0.25 * interior(true).norm(dim=1).mean() < errors[0]


@pytest.mark.parametrize("bins", [1, -3])
def test_remap_bins_must_be_off_or_at_least_two(bins):
    from innreg.config import Config
    from innreg.errors import InnregInputError

    with pytest.raises(InnregInputError, match="remap_bins"):
        Config.from_dict({"refine": {"remap_bins": bins}})
