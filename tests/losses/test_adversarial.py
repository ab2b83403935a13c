import pytest
import torch

from innreg.losses import lsgan_discriminator_loss, lsgan_generator_loss


def test_lsgan_losses_match_hand_computed_values():
    real = torch.tensor([[1.0, 0.0], [2.0, 1.0]])  # squared distances to 1: 0, 1, 1, 0 -> mean 0.5
    fake = torch.tensor([0.0, 1.0, -1.0, 2.0])  # squares 0, 1, 1, 4 -> mean 1.5; (f-1)^2: 1, 0, 4, 1 -> 1.5
    assert lsgan_discriminator_loss(real, fake).item() == pytest.approx(0.5 * (0.5 + 1.5))
    assert lsgan_generator_loss(fake).item() == pytest.approx(1.5)


def test_lsgan_optimum_and_gradient_direction():
    assert lsgan_discriminator_loss(torch.ones(3, 1, 4, 4), torch.zeros(3, 1, 4, 4)).item() == 0.0
    assert lsgan_generator_loss(torch.ones(5)).item() == 0.0
    fake = torch.zeros(4, requires_grad=True)
    (grad,) = torch.autograd.grad(lsgan_generator_loss(fake), fake)
    torch.testing.assert_close(grad, torch.full((4,), -0.5))  # d/df mean((f-1)^2) = 2(f-1)/4
