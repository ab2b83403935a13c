"""Registration network (innreg.nn.registration) and its U-Net backbone."""

from __future__ import annotations

import pytest
import torch

from innreg.nn.registration import RegistrationNet
from innreg.nn.unet import UNet
from innreg.core.warp import compose, warp

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


@pytest.mark.parametrize("cascades", [1, 2])
def test_gradients_reach_every_parameter(cascades):
    net = RegistrationNet(3, cascades=cascades)
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


def test_cascade_starts_as_the_single_pass_and_keeps_its_parameter_names():
    torch.manual_seed(0)
    single = RegistrationNet(2, affine=True)
    torch.manual_seed(0)
    cascade = RegistrationNet(2, affine=True, cascades=3)
    # The first pass is built first and named as before: a single-pass model file loads into it.
    assert {k for k in cascade.state_dict() if not k.startswith("cascade.")} == set(single.state_dict())
    with torch.no_grad():
        single.flow.weight.normal_(std=0.02)
        cascade.load_state_dict(single.state_dict(), strict=False)
        for _, flow in cascade.cascade:
            flow.weight.zero_()
        moving, fixed = torch.rand(1, 1, 16, 20), torch.rand(1, 1, 16, 20)
        a, b = single(moving, fixed), cascade(moving, fixed)
    assert a.ddf.abs().max() > 0.01
    for x, y in ((a.ddf, b.ddf), (a.inverse_ddf, b.inverse_ddf), (a.local_ddf, b.local_ddf)):
        assert torch.allclose(x, y, atol=1e-5)


@pytest.mark.parametrize("diffeomorphic", [True, False])
def test_cascade_chains_its_passes_and_inverts_the_chain(diffeomorphic):
    net = RegistrationNet(2, diffeomorphic=diffeomorphic, cascades=2)
    with torch.no_grad():
        for flow in (net.flow, net.cascade[0][1]):
            flow.weight.normal_(std=0.02)
        moving, fixed = torch.rand(1, 1, 16, 20), torch.rand(1, 1, 16, 20)
        out = net(moving, fixed)
        first = net._local(net.unet, net.flow, moving, fixed, True)[1]
        second = net._local(*net.cascade[0], warp(moving, first.ddf), fixed, True)[1]
    # The second pass registers the moving image as the first pass left it, and the maps chain.
    assert torch.allclose(out.ddf, compose(first.ddf, second.ddf), atol=1e-5)
    assert (out.ddf - first.ddf).abs().max() > 0.01
    # Each pass inverts exactly (up to interpolation); chaining the inverses interpolates once more.
    assert compose(out.ddf, out.inverse_ddf).abs().max() < 0.15 * out.ddf.abs().max()


def test_cascades_must_be_positive():
    with pytest.raises(ValueError, match="cascades"):
        RegistrationNet(2, cascades=0)
