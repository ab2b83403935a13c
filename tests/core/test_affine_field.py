"""The one affine-to-field conversion (innreg.core.affine) and its numpy front end for simulation."""

import math

import numpy as np
import torch

from innreg.core.affine import affine_ddf, invert_affine
from innreg.core.warp import compose
from innreg.data import affine_field


def rotation(deg: float) -> torch.Tensor:
    a = math.radians(deg)
    return torch.tensor([[[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]]])


def test_affine_ddf_hand_case():
    # A pure shift of (2, -1) voxels: the displacement is that shift everywhere.
    ddf = affine_ddf(torch.eye(2)[None], torch.tensor([[2.0, -1.0]]), (5, 7))
    assert torch.allclose(ddf[0, 0], torch.full((5, 7), 2.0))
    assert torch.allclose(ddf[0, 1], torch.full((5, 7), -1.0))
    # A 90 degree rotation about the centre (2, 3) of a 5x7 grid sends (0, 3) to (2 - 0, ...): check one point.
    ddf = affine_ddf(rotation(90), torch.zeros(1, 2), (5, 7))
    # p = (0, 3): p - c = (-2, 0) -> R(p - c) = (0, -2) -> mapped = (2, 1); displacement (2, -2).
    assert torch.allclose(ddf[0, :, 0, 3], torch.tensor([2.0, -2.0]), atol=1e-5)


def test_affine_inverse_and_exact_composition():
    matrix, t = rotation(12) * 1.05, torch.tensor([[1.5, -2.0]])
    shape = (20, 24)
    fwd = affine_ddf(matrix, t, shape)
    inv = affine_ddf(*invert_affine(matrix, t), shape)
    # inverse after forward is the identity (checked analytically through affine_ddf's inner argument)
    assert affine_ddf(*invert_affine(matrix, t), shape, inner=fwd).abs().max() < 1e-4
    # the exact composition agrees with interpolated composition away from the border
    local = 0.5 * torch.randn(1, 2, *shape).clamp(-1, 1)
    exact = affine_ddf(matrix, t, shape, inner=local)
    interp = compose(fwd, local)
    assert (exact - interp)[..., 3:-3, 3:-3].abs().max() < 1e-3
    assert inv.shape == fwd.shape


def test_numpy_front_end_is_the_affine_about_the_centre():
    # (A - I)(x - c) + t, written out in numpy: the displacement of x -> A (x - c) + c + t.
    matrix, translation, shape = np.array([[1.1, 0.2], [-0.1, 0.9]]), [1.5, -2.0], (7, 9)
    points = np.stack(np.meshgrid(np.arange(7.0), np.arange(9.0), indexing="ij"))
    centre = np.array([3.0, 4.0]).reshape(2, 1, 1)
    expected = np.einsum("ij,j...->i...", matrix - np.eye(2), points - centre) + np.reshape(translation, (2, 1, 1))
    ddf = affine_field(shape, matrix, translation)
    assert ddf.dtype == torch.float32 and ddf.shape == (2, *shape)
    np.testing.assert_allclose(ddf.numpy(), expected, atol=1e-6)
