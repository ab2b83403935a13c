import pytest
import torch

from innreg.losses import gradient_smoothness


def test_constant_field_is_free():
    ddf = torch.ones(2, 3, 4, 5, 6) * torch.tensor([1.0, -2.0, 0.5]).view(1, 3, 1, 1, 1)
    assert gradient_smoothness(ddf).item() == 0.0


def test_linear_field_2d_hand_computed():
    # u_0 = a * x_0, u_1 = 0: forward differences are a along axis 0 for component 0, else 0.
    a, shape = 0.3, (5, 7)
    ddf = torch.zeros(1, 2, *shape)
    ddf[0, 0] = a * torch.arange(shape[0], dtype=torch.float32).view(-1, 1)
    # axis 0: mean over 2 components of (a^2, 0) = a^2 / 2; axis 1: 0; mean over the 2 axes = a^2 / 4.
    assert gradient_smoothness(ddf).item() == pytest.approx(a**2 / 4)


def test_linear_field_3d_hand_computed():
    b, shape = 2.0, (3, 4, 5)
    ddf = torch.zeros(1, 3, *shape)
    ddf[0, 1] = b * torch.arange(shape[2], dtype=torch.float32)  # u_1 varies along axis 2
    assert gradient_smoothness(ddf).item() == pytest.approx(b**2 / 3 / 3)


def test_rejects_bad_shapes():
    with pytest.raises(ValueError):
        gradient_smoothness(torch.zeros(1, 3, 4, 5))
    with pytest.raises(ValueError):
        gradient_smoothness(torch.zeros(1, 2, 1, 5))
