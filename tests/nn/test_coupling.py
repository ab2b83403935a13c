"""Squeeze, LU 1x1 convolution and affine coupling (innreg.nn.coupling)."""

from __future__ import annotations

import math

import pytest
import torch

from innreg.nn.coupling import AffineCoupling, ConvSubnet, InvertibleBlock, InvertibleConv1x1, squeeze, unsqueeze


def test_squeeze_hand_computed_2d():
    x = torch.tensor([[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0]]).view(1, 1, 2, 4)
    z = squeeze(x)
    assert z.shape == (1, 4, 1, 2)
    # channel = row-major offset inside the 2x2 cell
    torch.testing.assert_close(z[0, :, 0, 0], torch.tensor([1.0, 2.0, 5.0, 6.0]))
    torch.testing.assert_close(z[0, :, 0, 1], torch.tensor([3.0, 4.0, 7.0, 8.0]))


@pytest.mark.parametrize("shape", [(2, 3, 6, 8), (2, 2, 4, 6, 2)])
def test_squeeze_round_trip(shape):
    x = torch.rand(shape)
    z = squeeze(x)
    dim = len(shape) - 2
    assert z.shape == (shape[0], shape[1] * 2**dim, *[s // 2 for s in shape[2:]])
    assert torch.equal(unsqueeze(z, dim), x)


def test_squeeze_rejects_odd_sizes():
    with pytest.raises(ValueError, match="even"):
        squeeze(torch.rand(1, 1, 5, 4))


def test_lu_conv_starts_orthogonal_and_inverts():
    layer = InvertibleConv1x1(8)
    w = layer.weight()
    torch.testing.assert_close(w @ w.T, torch.eye(8), atol=1e-5, rtol=0)
    with torch.no_grad():
        layer.lower.add_(0.3 * torch.randn(8, 8))
        layer.upper.add_(0.3 * torch.randn(8, 8))
        layer.log_abs.add_(0.5)
    x = torch.randn(2, 8, 3, 4, 5)
    y = layer(x)
    torch.testing.assert_close(y[0, :, 1, 2, 3], layer.weight() @ x[0, :, 1, 2, 3])
    assert (layer.inverse(y) - x).abs().max() < 1e-5


def test_lu_conv_starts_as_identity():
    layer = InvertibleConv1x1(4)
    torch.testing.assert_close(layer.weight(), torch.eye(4))


def test_lu_conv_is_identity_in_partial_cells():
    layer = InvertibleConv1x1(4)
    with torch.no_grad():
        layer.lower.add_(0.3 * torch.randn(4, 4))
        layer.upper.add_(0.3 * torch.randn(4, 4))
    x = torch.randn(1, 4, 3, 3)
    full = torch.ones(1, 1, 3, 3, dtype=torch.bool)
    full[..., 2] = False
    y = layer(x, full)
    assert torch.equal(y[..., 2], x[..., 2])
    assert not torch.allclose(y[..., :2], x[..., :2])


def test_coupling_formula_with_hand_set_subnets():
    coupling = AffineCoupling(4, dim=2, hidden=4, subnet="conv", clamp=1.5)
    # Last layers: raw log-scale 1000 (soft-clamped to 1.5) and shift 2 for y1; scale 0, shift -1 for y2.
    with torch.no_grad():
        coupling.net2.layers[-1].bias.copy_(torch.tensor([1000.0, 1000.0, 2.0, 2.0]))
        coupling.net1.layers[-1].bias.copy_(torch.tensor([0.0, 0.0, -1.0, -1.0]))
    x = torch.randn(1, 4, 5, 6)
    y = coupling(x)
    torch.testing.assert_close(y[:, :2], x[:, :2] * math.exp(1.5) + 2.0)
    torch.testing.assert_close(y[:, 2:], x[:, 2:] - 1.0)
    torch.testing.assert_close(coupling.inverse(y), x)


@pytest.mark.parametrize("subnet", ["ddc", "conv"])
def test_coupling_starts_as_identity(subnet):
    coupling = AffineCoupling(8, dim=3, hidden=8, subnet=subnet, kernel_size=3)
    x = torch.randn(2, 8, 4, 5, 3)
    torch.testing.assert_close(coupling(x), x)


def test_mask_keeps_padded_slots_zero():
    block = InvertibleBlock(4, dim=2, hidden=8, subnet="conv", kernel_size=3)
    for p in block.parameters():
        p.data.add_(0.2 * torch.randn_like(p))
    mask = torch.ones(1, 4, 3, 3)
    mask[:, 2:, 2, :] = 0  # last row of cells is half padding
    x = torch.randn(2, 4, 3, 3) * mask
    y = block(x, mask)
    assert torch.all(y[:, 2:, 2, :] == 0)
    assert (block.inverse(y, mask) - x).abs().max() < 1e-5


def test_conv_subnet_shapes_and_zero_output():
    net = ConvSubnet(2, 6, hidden=8, dim=3, kernel_size=3)
    out = net(torch.randn(1, 2, 4, 4, 4))
    assert out.shape == (1, 6, 4, 4, 4)
    assert torch.all(out == 0)
