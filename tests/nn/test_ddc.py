"""Dynamic depthwise convolution and the DDC local-attention subnet (innreg.nn.ddc)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from innreg.nn.ddc import DDCSubnet, DynamicDepthwiseConv, LocalAttentionGate, depthwise_conv


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


@pytest.mark.parametrize("dim", [2, 3])
def test_ddc_subnet_without_autograd_gives_the_same_values_and_leaves_its_input(dim):
    """Without autograd the subnet's element-wise steps run in place (registering): same output, input kept."""
    net = DDCSubnet(2, 4, hidden=8, dim=dim, kernel_size=3)
    torch.nn.init.normal_(net.proj_out.weight)  # a trained, non-zero last layer
    x = torch.randn(2, 2, *([5] * dim))
    kept = x.clone()
    with_grad = net(x)
    with torch.no_grad():
        torch.testing.assert_close(net(x), with_grad, rtol=0, atol=0)
    with torch.inference_mode():
        torch.testing.assert_close(net(x), with_grad.detach(), rtol=0, atol=0)
    assert torch.equal(x, kept)


def test_kernel_size_must_be_odd():
    with pytest.raises(ValueError, match="odd"):
        DynamicDepthwiseConv(4, dim=2, kernel_size=4)


@pytest.mark.parametrize(("x_shape", "w_shape"), [((2, 3, 6, 5), (3, 1, 3, 3)), ((2, 3, 4, 5, 3), (3, 1, 5, 3, 3))])
def test_depthwise_conv_matches_torch_and_its_gradients_are_exact(x_shape, w_shape):
    x = torch.randn(x_shape, dtype=torch.float64, requires_grad=True)
    w = torch.randn(w_shape, dtype=torch.float64, requires_grad=True)
    b = torch.randn(w_shape[0], dtype=torch.float64, requires_grad=True)
    conv = F.conv2d if len(x_shape) == 4 else F.conv3d
    padding = [k // 2 for k in w_shape[2:]]
    torch.testing.assert_close(depthwise_conv(x, w, b), conv(x, w, b, padding=padding, groups=x_shape[1]))
    assert torch.autograd.gradcheck(depthwise_conv, (x, w, b))
    assert torch.autograd.gradcheck(depthwise_conv, (x, w))
    # an expanded (stride-0) incoming gradient, as from .sum(), gives torch's gradients too
    ours = torch.autograd.grad(depthwise_conv(x, w, b).sum(), (x, w, b))
    ref = torch.autograd.grad(conv(x, w, b, padding=padding, groups=x_shape[1]).sum(), (x, w, b))
    for a, r in zip(ours, ref):
        torch.testing.assert_close(a, r)


def test_depthwise_conv_rejects_even_kernels():
    with pytest.raises(ValueError, match="odd"):
        depthwise_conv(torch.rand(1, 2, 5, 5), torch.rand(2, 1, 2, 3))
