"""DDC local-attention subnetwork for the affine couplings of the INN translator.

"DDC" is a dynamic depthwise convolution: its per-sample, per-channel ``k**dim`` kernels are generated
from the content of the input (global average pool -> 1x1 conv -> ReLU -> 1x1 conv), so the spatial
filter adapts to the image (e.g. to its contrast). The *local attention* is a gate in ``(0, 1)`` per
voxel and channel, computed from the voxel's ``k**dim`` neighbourhood (static depthwise conv, then a
1x1 conv across channels, then a sigmoid); it re-weights the dynamic-conv features inside each
neighbourhood, like the large-kernel attention of VAN. This form costs ``O(k**dim * hidden)`` per voxel
and no ``k**dim`` unfolding, so 3D volumes stay affordable.

No normalisation layers: batch norm breaks at batch size 1, and instance norm would remove the
absolute intensity that a modality translation needs.

Depthwise convolutions use :func:`depthwise_conv`, whose CPU backward pass is written as two forward
depthwise convolutions; PyTorch's own CPU backward for depthwise kernels is 5-15x slower. On a GPU,
cuDNN's own backward is used: there the slice-wise weight gradient would be hundreds of small launches.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from innreg.nn.layers import check_dim, conv

_NEGATIVE_SLOPE = 0.2


def _depthwise(x: Tensor, weight: Tensor, bias: Tensor | None, padding: list[int]) -> Tensor:
    """Depthwise cross-correlation of ``(N, C, *spatial)`` with ``(C, 1, *kernel)`` and zero padding."""
    dim = x.dim() - 2
    # torch.convolution is dimension-generic, so 2D and 3D share this line.
    return torch.convolution(x, weight, bias, [1] * dim, padding, [1] * dim, False, [0] * dim, x.shape[1])


class _DepthwiseConvFunction(torch.autograd.Function):
    """Depthwise convolution whose gradients are themselves depthwise convolutions.

    With ``y = x * w`` (per channel, odd kernel, zero padding ``k // 2``):
    ``dL/dx = dL/dy * flip(w)`` and ``dL/dw[o] = sum_p dL/dy[p] x[p + o - k // 2]``, the latter being a
    depthwise convolution of ``x`` with ``dL/dy`` as a (large) kernel, one sample at a time.
    """

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        ctx.padding = [k // 2 for k in weight.shape[2:]]
        return _depthwise(x, weight, bias, ctx.padding)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: Tensor):
        x, weight = ctx.saved_tensors
        spatial = tuple(range(2, x.dim()))
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_x = _depthwise(grad, weight.flip(spatial), None, ctx.padding)
        if ctx.needs_input_grad[1]:
            grad_w = sum(_weight_grad(x[i : i + 1], grad[i : i + 1], ctx.padding) for i in range(x.shape[0]))
            grad_w = grad_w.transpose(0, 1)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_b = grad.sum(dim=(0, *spatial))
        return grad_x, grad_w, grad_b


def _weight_grad(x: Tensor, grad: Tensor, padding: list[int]) -> Tensor:
    """``dL/dw`` of a depthwise conv for one sample: ``(1, C, *spatial)`` x2 -> ``(1, C, *kernel)``.

    The correlation of ``x`` with ``grad`` as a kernel, one slice of ``grad`` along the first spatial
    axis at a time: a whole-volume kernel makes the convolution's workspace ~18x the input (245 MiB
    for a 32-channel 48^3 feature map) and is ~20x slower on CPU than these thin slices (measured).
    """
    n_rows, p = x.shape[2], padding[0]
    out = x.new_zeros((1, x.shape[1], 2 * p + 1, *[2 * q + 1 for q in padding[1:]]))
    for row in range(n_rows):
        # Rows row - p .. row + p of x, clipped to the volume (the zero padding contributes nothing).
        lo, hi = max(row - p, 0), min(row + p + 1, n_rows)
        kernel = grad[0, :, row : row + 1].unsqueeze(1)
        part = _depthwise(x[:, :, lo:hi], kernel, None, [0, *padding[1:]])
        out[:, :, lo - row + p : hi - row + p] += part
    return out


def depthwise_conv(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """Same-size depthwise convolution (zero padding) with a fast CPU backward (PyTorch's own elsewhere).

    Args:
        x: ``(N, C, *spatial)``.
        weight: ``(C, 1, *kernel)``, odd kernel sizes.
        bias: ``(C,)`` or ``None``.

    Returns:
        ``(N, C, *spatial)``, equal to ``convNd(x, weight, bias, padding=k // 2, groups=C)``.
    """
    if weight.shape[0] != x.shape[1] or weight.shape[1] != 1 or any(k % 2 == 0 for k in weight.shape[2:]):
        raise ValueError(f"need ({x.shape[1]}, 1, *odd kernel) weights, got {tuple(weight.shape)}")
    # Under autocast x may be bf16/fp16 while the parameters stay float32 (the raw convolution op is
    # not autocast); the casts are differentiable, so the float32 parameters get their gradients.
    weight = weight.to(x.dtype)
    bias = None if bias is None else bias.to(x.dtype)
    if x.device.type != "cpu" or not torch.is_grad_enabled():
        # The slice-wise weight gradient pays off on oneDNN alone: on an H200 it made the 2D joint step
        # launch-bound (thousands of small convolutions a step), where cuDNN's backward is one kernel.
        # Without autograd (registering) the custom function would only add its call overhead.
        return _depthwise(x, weight, bias, [k // 2 for k in weight.shape[2:]])
    return _DepthwiseConvFunction.apply(x, weight, bias)


class DynamicDepthwiseConv(nn.Module):
    """Depthwise convolution with kernels generated per sample from the input's global content.

    Args:
        channels: number of input (= output) channels ``C``.
        dim: 2 or 3.
        kernel_size: odd kernel size ``k``; padding keeps the spatial size.
        reduction: width of the kernel generator's hidden layer is ``max(C // reduction, 1)``.

    Shapes:
        ``(N, C, *spatial) -> (N, C, *spatial)``.
    """

    def __init__(self, channels: int, dim: int, kernel_size: int = 5, reduction: int = 4) -> None:
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be odd, got {kernel_size}")
        self.dim = check_dim(dim)
        self.channels = channels
        self.kernel_size = kernel_size
        taps = kernel_size**dim
        squeezed = max(channels // reduction, 1)
        self.generator = nn.Sequential(
            conv(dim)(channels, squeezed, 1),
            nn.ReLU(inplace=True),
            conv(dim)(squeezed, channels * taps, 1),
        )
        # The generator sees one global descriptor per sample, which barely varies between images, so a
        # ReLU unit that starts negative would stay dead for good; a positive bias starts them all active.
        nn.init.constant_(self.generator[0].bias, 1.0)
        # Fan-in scaling so a generated kernel starts with the gain of a default-initialised conv.
        self.scale = 1.0 / math.sqrt(taps)

    def forward(self, x: Tensor) -> Tensor:
        n, c = x.shape[:2]
        if c != self.channels:
            raise ValueError(f"expected {self.channels} channels, got input of shape {tuple(x.shape)}")
        pooled = x.mean(dim=tuple(range(2, x.dim())), keepdim=True)
        kernels = self.generator(pooled) * self.scale
        kernels = kernels.reshape(n, c, 1, *([self.kernel_size] * self.dim))
        # One grouped (depthwise) conv per sample. Folding the batch into the groups instead would
        # force a channels-first copy, which oneDNN runs 5-10x slower on CPU than channels-last.
        outs = [depthwise_conv(x[i : i + 1], kernels[i]) for i in range(n)]
        return outs[0] if n == 1 else torch.cat(outs)


class LocalAttentionGate(nn.Module):
    """Per-voxel, per-channel attention weights in ``(0, 1)`` from each voxel's ``k**dim`` neighbourhood.

    ``gate = sigmoid(pointwise(depthwise_k(x)))``: the depthwise conv looks at the neighbourhood of
    every channel, the pointwise conv lets the channels vote together.

    Shapes:
        ``(N, C, *spatial) -> (N, C, *spatial)``.
    """

    def __init__(self, channels: int, dim: int, kernel_size: int = 5) -> None:
        super().__init__()
        # Parameters (and their default initialisation) of a depthwise conv, applied by depthwise_conv.
        self.local = conv(dim)(channels, channels, kernel_size, padding=kernel_size // 2, groups=channels)
        self.mix = conv(dim)(channels, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        logits = self.mix(depthwise_conv(x, self.local.weight, self.local.bias))
        return torch.sigmoid(logits, out=None if torch.is_grad_enabled() else logits)  # in place: see DDCSubnet


class DDCSubnet(nn.Module):
    """Coupling subnetwork: input projection, DDC local attention with a residual path, output projection.

    ``h = act(proj_in(x)); h = h + mix(act(ddc(h) * gate(h))); out = proj_out(act(h))``, with
    LeakyReLU(0.2) as ``act``. ``proj_out`` is zero-initialised, so a coupling that uses this subnet
    starts as the identity.

    Args:
        in_channels: channels of the conditioning half.
        out_channels: channels produced (``2 x`` the transformed half: log-scales and shifts).
        hidden: feature width.
        dim: 2 or 3.
        kernel_size: odd neighbourhood size of the dynamic conv and of the attention.

    Shapes:
        ``(N, in_channels, *spatial) -> (N, out_channels, *spatial)``.
    """

    def __init__(self, in_channels: int, out_channels: int, hidden: int, dim: int, kernel_size: int = 5) -> None:
        super().__init__()
        self.proj_in = conv(dim)(in_channels, hidden, 1)
        self.dynamic = DynamicDepthwiseConv(hidden, dim, kernel_size)
        self.attention = LocalAttentionGate(hidden, dim, kernel_size)
        self.mix = conv(dim)(hidden, hidden, 1)
        self.proj_out = conv(dim)(hidden, out_channels, 1)
        nn.init.zeros_(self.proj_out.weight)
        nn.init.zeros_(self.proj_out.bias)

    def forward(self, x: Tensor) -> Tensor:
        # Without autograd (registering) the element-wise steps overwrite their fresh inputs: at this width
        # they are memory-bound, and the saved passes took 6 % off the 2D translator's forward pass (same
        # values). Autograd keeps the inputs of its products, so training allocates.
        inplace = not torch.is_grad_enabled()
        h = F.leaky_relu(self.proj_in(x), _NEGATIVE_SLOPE, inplace)
        gated = self.dynamic(h)
        gated = torch.mul(gated, self.attention(h), out=gated if inplace else None)
        h = torch.add(h, self.mix(F.leaky_relu(gated, _NEGATIVE_SLOPE, inplace)), out=h if inplace else None)
        return self.proj_out(F.leaky_relu(h, _NEGATIVE_SLOPE, inplace))
