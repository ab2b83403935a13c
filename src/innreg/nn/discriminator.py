"""PatchGAN discriminator (2D/3D) for the adversarial translation loss."""

from __future__ import annotations

import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from innreg.core.filters import gaussian_smooth
from innreg.nn.layers import check_dim, conv, instance_norm
from innreg.nn.layers import to_channels_last

_NEGATIVE_SLOPE = 0.2
_KERNEL = 4


class PatchDiscriminator(nn.Module):
    """PatchGAN: ``n_layers`` stride-2 convs, one stride-1 conv, then a 1-channel stride-1 conv of logits.

    Kernel 4, padding 1, LeakyReLU(0.2), instance norm on every conv except the first and the last.
    Inputs smaller than :attr:`min_size` along an axis are replicate-padded (symmetrically) up to it, so
    tiny images (e.g. 16x16) still give at least one patch.

    Args:
        dim: 2 or 3.
        in_channels: image channels.
        channels: width of the first conv (doubled per stride-2 level, capped at ``8 * channels``).
        n_layers: stride-2 levels.
        blur_sigma: the critic judges its input smoothed by a Gaussian of this many voxels (0: as
            given). Real images carry noise that a translation cannot (an invertible map of a clean
            image has no independent noise to give); a critic that sees the noise rewards a
            generator for faking it as high-frequency texture. Smoothing both real and fake images
            hides that difference and leaves contrast and structure to judge.

    Shapes:
        ``(N, in_channels, *spatial) -> (N, 1, *patches)`` of raw logits (no sigmoid).
    """

    def __init__(
        self, dim: int = 2, in_channels: int = 1, channels: int = 32, n_layers: int = 3, blur_sigma: float = 0.0
    ) -> None:
        super().__init__()
        self.dim = check_dim(dim)
        if n_layers < 1:
            raise ValueError(f"n_layers must be >= 1, got {n_layers}")
        if blur_sigma < 0:
            raise ValueError(f"blur_sigma must be >= 0, got {blur_sigma}")
        self.in_channels = in_channels
        self.blur_sigma = float(blur_sigma)
        # Each stride-2 conv floors size/2, each stride-1 conv removes 1: 3 * 2**n_layers leaves
        # 2 voxels before the last instance norm and 1 patch at the output.
        self.min_size = 3 * 2**n_layers
        layers: list[nn.Module] = [
            conv(dim)(in_channels, channels, _KERNEL, stride=2, padding=1),
            nn.LeakyReLU(_NEGATIVE_SLOPE, inplace=True),
        ]
        width = channels
        for level in range(1, n_layers + 1):
            out = channels * min(2**level, 8)
            stride = 2 if level < n_layers else 1
            layers += [
                conv(dim)(width, out, _KERNEL, stride=stride, padding=1),
                instance_norm(dim)(out, affine=True),
                nn.LeakyReLU(_NEGATIVE_SLOPE, inplace=True),
            ]
            width = out
        layers.append(conv(dim)(width, 1, _KERNEL, stride=1, padding=1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != self.dim + 2 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"expected (N, {self.in_channels}, *spatial) with {self.dim} spatial dims, got {tuple(x.shape)}"
            )
        short = [max(self.min_size - s, 0) for s in x.shape[2:]]
        if any(short):
            pads = [p for m in reversed(short) for p in (m // 2, m - m // 2)]  # F.pad: last axis first
            x = F.pad(x, pads, mode="replicate")
        x = gaussian_smooth(x, self.blur_sigma)
        return self.net(to_channels_last(x)).contiguous()
