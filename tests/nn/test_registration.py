"""Registration network (innreg.nn.registration) and its U-Net backbone."""

from __future__ import annotations

import pytest
import torch

from innreg.nn.registration import RegistrationNet
from innreg.nn.unet import UNet
from innreg.core.warp import compose

SHAPES = [(13, 15), (7, 9, 5)]


def _net_with_visible_field(dim: int, diffeomorphic: bool) -> RegistrationNet:
    net = RegistrationNet(dim, diffeomorphic=diffeomorphic)
    with torch.no_grad():
        net.flow.weight.normal_(std=0.02)  # the default 1e-5 init gives fields too small to test
    return net


@pytest.mark.parametrize("diffeomorphic", [True, False])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_output_shapes_on_odd_sizes(shape, diffeomorphic):
    dim = len(shape)
    net = RegistrationNet(dim, diffeomorphic=diffeomorphic)
    out = net(torch.rand(2, 1, *shape), torch.rand(2, 1, *shape))
    assert out.ddf.shape == out.inverse_ddf.shape == (2, dim, *shape)
    assert (out.velocity is not None) == diffeomorphic
    if diffeomorphic:
        assert out.velocity.shape == (2, dim, *shape)
    assert out.ddf.abs().max() < 1e-3  # near-identity at initialisation
    assert net(torch.rand(1, 1, *shape), torch.rand(1, 1, *shape), with_inverse=False).inverse_ddf is None


@pytest.mark.parametrize("diffeomorphic", [True, False])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_inverse_ddf_undoes_ddf(shape, diffeomorphic):
    net = _net_with_visible_field(len(shape), diffeomorphic)
    with torch.no_grad():
        out = net(torch.rand(1, 1, *shape), torch.rand(1, 1, *shape))
    size = out.ddf.abs().max()
    assert size > 0.01
    residual = compose(out.ddf, out.inverse_ddf).abs().max()
    # exp(v) o exp(-v) is exact up to interpolation error; fixed-point inversion converges fully.
    assert residual < (0.15 if diffeomorphic else 1e-3) * size


def test_plain_ddf_is_the_network_output_and_velocity_integrates_to_ddf():
    net = _net_with_visible_field(2, diffeomorphic=True)
    with torch.no_grad():
        out = net(torch.rand(1, 1, 16, 16), torch.rand(1, 1, 16, 16))
    # small velocity: exp(v) ~ v
    assert (out.ddf - out.velocity).abs().max() < 0.1 * out.velocity.abs().max()


def test_gradients_reach_every_parameter():
    net = RegistrationNet(3)
    moving, fixed = torch.rand(1, 1, 8, 10, 6), torch.rand(1, 1, 8, 10, 6)
    out = net(moving, fixed, with_inverse=False)
    out.ddf.square().sum().backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_rejects_mismatched_inputs():
    with pytest.raises(ValueError, match="moving and fixed"):
        RegistrationNet(2)(torch.rand(1, 1, 8, 8), torch.rand(1, 1, 8, 9))


def test_unet_levels_and_validation():
    unet = UNet(2, 2, encoder=(4, 8), decoder=(8, 8, 4))
    assert unet(torch.rand(1, 2, 8, 12)).shape == (1, 4, 8, 12)
    with pytest.raises(ValueError, match="multiples of 4"):
        unet(torch.rand(1, 2, 6, 8))
    with pytest.raises(ValueError, match="len\\(decoder\\)"):
        UNet(2, 2, encoder=(4, 8, 8), decoder=(8, 8))
