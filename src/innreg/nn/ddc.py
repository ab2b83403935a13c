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
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
from torch import Tensor

from innreg.nn.layers import check_dim, conv

_NEGATIVE_SLOPE = 0.2


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
        # torch.convolution is dimension-generic, so 2D and 3D share this code.
        padding = [self.kernel_size // 2] * self.dim
        ones, zeros = [1] * self.dim, [0] * self.dim
        outs = [
            torch.convolution(x[i : i + 1], kernels[i], None, ones, padding, ones, False, zeros, c) for i in range(n)
        ]
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
        self.local = conv(dim)(channels, channels, kernel_size, padding=kernel_size // 2, groups=channels)
        self.mix = conv(dim)(channels, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        return torch.sigmoid(self.mix(self.local(x)))


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
        self.act = nn.LeakyReLU(_NEGATIVE_SLOPE)
        nn.init.zeros_(self.proj_out.weight)
        nn.init.zeros_(self.proj_out.bias)

    def forward(self, x: Tensor) -> Tensor:
        h = self.act(self.proj_in(x))
        h = h + self.mix(self.act(self.dynamic(h) * self.attention(h)))
        return self.proj_out(self.act(h))
