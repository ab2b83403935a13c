import numpy as np
import pytest
import torch

from innreg.data.deformations import (
    DeformationParams,
    affine_field,
    apply_deformation,
    random_affine_field,
    random_deformation,
    random_elastic_field,
)
from innreg.metrics import jacobian_determinant
from innreg.core.warp import warp


def test_affine_field_quarter_turn_about_the_centre():
    # x -> R (x - c) + c with R = [[0, -1], [1, 0]] on a 5x5 grid (c = (2, 2)).
    ddf = affine_field((5, 5), np.array([[0.0, -1.0], [1.0, 0.0]]), [0.0, 0.0])
    assert ddf.shape == (2, 5, 5) and ddf.dtype == torch.float32
    # voxel (0, 0): x - c = (-2, -2) -> R(x - c) = (2, -2) -> (4, 0); displacement (4, 0)
    assert ddf[:, 0, 0].tolist() == [4.0, 0.0]
    assert ddf[:, 2, 2].tolist() == [0.0, 0.0]
    image = torch.arange(25.0).view(1, 1, 5, 5)
    # out(i, j) = in(R (x - c) + c): out(0, 0) = in(4, 0), a clockwise quarter turn of the array
    np.testing.assert_allclose(warp(image, ddf[None])[0, 0], torch.rot90(image[0, 0], k=-1), atol=1e-5)


def test_zero_ranges_give_zero_field_and_fixed_scale_is_a_zoom():
    assert random_affine_field((6, 7), 0.0, (1.0, 1.0), 0.0, 0.0, rng=0).abs().max() == 0
    ddf = random_affine_field((5, 4, 3), 0.0, (1.2, 1.2), 0.0, 0.0, rng=0)
    centre = torch.tensor([2.0, 1.5, 1.0]).view(3, 1, 1, 1)
    grid = torch.stack(torch.meshgrid(*[torch.arange(s, dtype=torch.float32) for s in (5, 4, 3)], indexing="ij"))
    np.testing.assert_allclose(ddf, 0.2 * (grid - centre), atol=1e-6)


def test_translation_is_bounded_per_axis():
    for seed in range(5):
        ddf = random_affine_field((10, 12), 0.0, (1.0, 1.0), 0.0, [1.0, 3.0], rng=seed)
        t = ddf[:, 0, 0]
        assert torch.allclose(ddf, t.view(2, 1, 1).expand_as(ddf))
        assert abs(t[0]) <= 1.0 and abs(t[1]) <= 3.0


def test_rotation_in_physical_space_is_rigid_on_anisotropic_grid():
    spacing = (2.0, 1.0)
    ddf = random_affine_field((9, 9), 30.0, (1.0, 1.0), 0.0, 0.0, rng=3, spacing=spacing)
    # mapped voxel steps, in mm, keep their length
    step0 = (ddf[:, 1, 0] - ddf[:, 0, 0] + torch.tensor([1.0, 0.0])) * torch.tensor(spacing)
    step1 = (ddf[:, 0, 1] - ddf[:, 0, 0] + torch.tensor([0.0, 1.0])) * torch.tensor(spacing)
    assert step0.norm().item() == pytest.approx(2.0, rel=1e-5)
    assert step1.norm().item() == pytest.approx(1.0, rel=1e-5)


@pytest.mark.parametrize("shape", [(48, 40), (16, 18, 14)])
def test_elastic_field_is_diffeomorphic_with_requested_size(shape):
    ddf = random_elastic_field(shape, magnitude_vox=2.0, smoothness_vox=4.0, rng=1)
    assert ddf.shape == (len(shape), *shape)
    rms = ddf.pow(2).mean().sqrt().item()
    assert 1.0 < rms < 3.0
    assert jacobian_determinant(ddf[None]).min() > 0
    assert torch.equal(ddf, random_elastic_field(shape, 2.0, 4.0, rng=1))
    assert random_elastic_field(shape, 0.0, 4.0, rng=1).abs().max() == 0


def test_random_deformation_is_reproducible_and_folding_free():
    ddf = random_deformation((48, 40), DeformationParams(), rng=7)
    assert torch.equal(ddf, random_deformation((48, 40), DeformationParams(), rng=np.random.default_rng(7)))
    assert not torch.equal(ddf, random_deformation((48, 40), DeformationParams(), rng=8))
    assert jacobian_determinant(ddf[None]).min() > 0
    # bounded by the largest affine displacement plus a few times the elastic RMS
    assert ddf.abs().max() < 0.3 * 48


def test_params_validation():
    with pytest.raises(ValueError, match="scale"):
        DeformationParams(scale=(1.1, 0.9))
    with pytest.raises(ValueError, match="shear"):
        DeformationParams(shear=-0.1)


def test_apply_deformation_shift_layouts_and_labels():
    image = torch.rand(2, 6, 7)  # (C, *S)
    labels = torch.randint(0, 4, (1, 6, 7))
    shift = torch.zeros(2, 6, 7)
    shift[1] = 1.0  # out(i, j) = in(i, j + 1)
    warped, warped_labels = apply_deformation(image, labels, shift)
    torch.testing.assert_close(warped[:, :, :-1], image[:, :, 1:])
    assert (warped[:, :, -1] == 0).all()
    assert torch.equal(warped_labels[:, :, :-1], labels[:, :, 1:]) and warped_labels.dtype == labels.dtype
    batched, none = apply_deformation(image[None].expand(3, -1, -1, -1), None, shift[None].expand(3, -1, -1, -1))
    assert none is None and batched.shape == (3, 2, 6, 7)
    torch.testing.assert_close(batched[1], warped)
    with pytest.raises(ValueError, match="batched"):
        apply_deformation(image[None], None, shift)
