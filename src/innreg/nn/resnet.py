"""Non-invertible ResNet translator (CycleGAN/RegGAN generator): the "w/o INN" ablation."""

from __future__ import annotations

import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from innreg.nn.layers import check_dim, conv, crop_to, instance_norm, pad_to_multiple
from innreg.nn.layers import to_channels_last

_MIN_SIZE = 8


def _conv_norm_relu(dim: int, in_channels: int, out_channels: int, kernel: int, stride: int = 1) -> list[nn.Module]:
    return [
        conv(dim)(in_channels, out_channels, kernel, stride=stride, padding=kernel // 2, padding_mode="replicate"),
        instance_norm(dim)(out_channels, affine=True),
        nn.ReLU(inplace=True),
    ]


class ResidualBlock(nn.Module):
    """``x + IN(conv(ReLU(IN(conv(x)))))`` with 3-wide kernels and replicate padding."""

    def __init__(self, dim: int, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            *_conv_norm_relu(dim, channels, channels, 3),
            conv(dim)(channels, channels, 3, padding=1, padding_mode="replicate"),
            instance_norm(dim)(channels, affine=True),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


class _Upsample(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return F.interpolate(x, scale_factor=2, mode="nearest")


class ResNetTranslator(nn.Module):
    """CycleGAN-style ResNet generator in 2D or 3D.

    ``conv7 -> 2 x (stride-2 conv, width x2) -> n_blocks residual blocks -> 2 x (nearest upsample +
    conv, width /2) -> conv7``, instance norm and ReLU after every inner conv, replicate padding
    (reflect padding needs every size > pad, which fails at quarter resolution on small inputs).
    Upsampling is nearest + conv rather than transposed convolution, which avoids checkerboard artefacts.

    The output has **no activation**: images are normalised to ``[0, 1]`` but a sigmoid would make the
    background value 0 unreachable (vanishing gradient there), and the invertible translator's output is
    unbounded too, so both translators are compared on equal terms.

    Inputs of any size are replicate-padded to a multiple of 4 (and at least 8) and cropped back.

    Args:
        dim: 2 or 3.
        in_channels: image channels (output has the same number).
        channels: width of the first layer (the bottleneck has ``4 * channels``).
        n_blocks: residual blocks at quarter resolution.

    Shapes:
        ``(N, in_channels, *spatial) -> (N, in_channels, *spatial)``.
    """

    # Not local: instance norm takes its statistics over the whole input, so a crop is translated
    # differently from the same voxels inside the image (trained on crops: test NCC 0.42, below the
    # untranslated 0.50, against 0.70 on whole images in fewer steps, benchmarks/RESULTS.md 2e).
    # The translator stages train it on whole images.
    local = False

    def __init__(self, dim: int = 2, in_channels: int = 1, channels: int = 32, n_blocks: int = 6) -> None:
        super().__init__()
        self.dim = check_dim(dim)
        self.in_channels = in_channels
        layers: list[nn.Module] = _conv_norm_relu(dim, in_channels, channels, 7)
        width = channels
        for _ in range(2):
            layers += _conv_norm_relu(dim, width, 2 * width, 3, stride=2)
            width *= 2
        layers += [ResidualBlock(dim, width) for _ in range(n_blocks)]
        for _ in range(2):
            layers += [_Upsample(), *_conv_norm_relu(dim, width, width // 2, 3)]
            width //= 2
        layers.append(conv(dim)(width, in_channels, 7, padding=3, padding_mode="replicate"))
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        """Translate moving modality -> fixed modality."""
        if x.dim() != self.dim + 2 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"expected (N, {self.in_channels}, *spatial) with {self.dim} spatial dims, got {tuple(x.shape)}"
            )
        shape = tuple(x.shape[2:])
        # At least 8 voxels per axis, so instance norm sees more than one voxel at quarter resolution.
        short = [max(_MIN_SIZE - s, 0) for s in reversed(shape)]
        if any(short):
            x = F.pad(x, [p for m in short for p in (0, m)], mode="replicate")  # F.pad: last axis first
        padded, _ = pad_to_multiple(x, 4, mode="replicate")
        return crop_to(self.net(to_channels_last(padded)), shape).contiguous()
