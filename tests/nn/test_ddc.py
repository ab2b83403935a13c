"""Dynamic depthwise convolution and the DDC local-attention subnet (innreg.nn.ddc)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from innreg.nn.ddc import DDCSubnet, DynamicDepthwiseConv, LocalAttentionGate


def test_dynamic_conv_with_constant_generator_is_a_static_depthwise_conv():
    layer = DynamicDepthwiseConv(4, dim=2, kernel_size=3)
    kernel = torch.randn(4, 1, 3, 3)
    with torch.no_grad():
        last = layer.generator[-1]
        last.weight.zero_()
        last.bias.copy_(kernel.flatten() / layer.scale)
    x = torch.randn(2, 4, 7, 6)
    torch.testing.assert_close(layer(x), F.conv2d(x, kernel, padding=1, groups=4))


@pytest.mark.parametrize("shape", [(2, 8, 7, 6), (2, 8, 5, 4, 3)])
def test_dynamic_conv_kernels_depend_on_each_sample_only(shape):
    layer = DynamicDepthwiseConv(8, dim=len(shape) - 2, kernel_size=3)
    x = torch.randn(shape)
    batch = layer(x)
    assert batch.shape == x.shape
    torch.testing.assert_close(batch[1:], layer(x[1:]))
    # Content-adaptive: rescaling the input changes the kernels, so the output is not just rescaled.
    assert not torch.allclose(layer(2 * x[:1]), 2 * batch[:1], atol=1e-4)


def test_attention_gate_is_in_unit_interval():
    gate = LocalAttentionGate(4, dim=3, kernel_size=3)(torch.randn(1, 4, 5, 5, 5) * 10)
    assert gate.shape == (1, 4, 5, 5, 5)
    assert gate.min() >= 0 and gate.max() <= 1


@pytest.mark.parametrize("dim", [2, 3])
def test_ddc_subnet_starts_at_zero_and_learns(dim):
    net = DDCSubnet(2, 4, hidden=16, dim=dim, kernel_size=3)
    x = torch.randn(1, 2, *([6] * dim))
    out = net(x)
    assert out.shape == (1, 4, *([6] * dim)) and torch.all(out == 0)
    # The zero last layer blocks gradients to the rest only until its first update.
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _ in range(2):
        optimizer.zero_grad()
        (net(x) - 1).square().mean().backward()
        optimizer.step()
    for name, p in net.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_kernel_size_must_be_odd():
    with pytest.raises(ValueError, match="odd"):
        DynamicDepthwiseConv(4, dim=2, kernel_size=4)
