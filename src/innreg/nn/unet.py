"""VoxelMorph-style U-Net backbone (2D/3D)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from innreg.nn.layers import check_dim, conv

_NEGATIVE_SLOPE = 0.2


class ConvAct(nn.Sequential):
    """``conv(k=3, stride) -> LeakyReLU(0.2)``."""

    def __init__(self, dim: int, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__(
            conv(dim)(in_channels, out_channels, 3, stride=stride, padding=1),
            nn.LeakyReLU(_NEGATIVE_SLOPE),
        )


class UNet(nn.Module):
    """VoxelMorph U-Net: stride-2 conv encoder, nearest-upsampling decoder with skip connections.

    Encoder level ``i`` is a stride-2 conv to ``encoder[i]`` channels. The first ``len(encoder)``
    decoder convs each run at one level (coarsest first) and are followed by x2 upsampling and
    concatenation with the skip of the next finer level (the input itself last); the remaining
    decoder convs run at full resolution.

    Args:
        dim: 2 or 3.
        in_channels: input channels.
        encoder: encoder widths.
        decoder: decoder widths, ``len(decoder) >= len(encoder)``.

    Shapes:
        ``(N, in_channels, *spatial) -> (N, decoder[-1], *spatial)``; every spatial size must be a
        multiple of ``2 ** len(encoder)`` (callers pad, see :attr:`multiple`).
    """

    def __init__(self, dim: int, in_channels: int, encoder: Sequence[int], decoder: Sequence[int]) -> None:
        super().__init__()
        check_dim(dim)
        if not encoder or len(decoder) < len(encoder):
            raise ValueError(
                f"need a non-empty encoder and len(decoder) >= len(encoder), got {tuple(encoder)}, {tuple(decoder)}"
            )
        self.multiple = 2 ** len(encoder)
        self.out_channels = decoder[-1]
        skips = [in_channels, *encoder[:-1]]
        self.down = nn.ModuleList()
        prev = in_channels
        for width in encoder:
            self.down.append(ConvAct(dim, prev, width, stride=2))
            prev = width
        self.up = nn.ModuleList()
        for width, skip in zip(decoder, reversed(skips)):
            self.up.append(ConvAct(dim, prev, width))
            prev = width + skip
        self.tail = nn.ModuleList()
        for width in decoder[len(encoder) :]:
            self.tail.append(ConvAct(dim, prev, width))
            prev = width

    def forward(self, x: Tensor) -> Tensor:
        if any(s % self.multiple for s in x.shape[2:]):
            raise ValueError(f"spatial sizes must be multiples of {self.multiple}, got {tuple(x.shape)}")
        skips = [x]
        for layer in self.down:
            x = layer(x)
            skips.append(x)
        skips.pop()  # the bottleneck is not a skip
        for layer in self.up:
            x = F.interpolate(layer(x), scale_factor=2, mode="nearest")
            x = torch.cat([x, skips.pop()], dim=1)
        for layer in self.tail:
            x = layer(x)
        return x
