"""Non-invertible residual U-Net translator: the refinement's guide (``model.guide: unet``).

The invertible translator has to keep the moving image's noise and every ambiguity of the modality
mapping in its output; a U-Net may average them away. Trained on the ideal data of the whole-head
phantom it reaches NCC 0.93 with the truth where the INN reaches 0.77 (PD -> T1; CT -> T1: 0.82 against
0.74, ``benchmarks/RESULTS.md`` section 2e), which is why it was tried as the refinement's guide while the
INN stays the registration network's input (section 2f: it bought little).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch.nn as nn
from torch import Tensor

from innreg.nn.layers import check_dim, conv, crop_to, pad_to_multiple, to_channels_last
from innreg.nn.unet import UNet


class UNetTranslator(nn.Module):
    """``x + conv3(UNet(x))``: a VoxelMorph-width U-Net predicting the change of intensity.

    Inputs of any size are replicate-padded to a multiple of ``2 ** len(encoder)`` and cropped back. No
    normalisation layer and a bounded receptive field: a voxel's output depends on a window around it,
    so training on crops trains the whole-image map (:attr:`local`).

    Args:
        dim: 2 or 3.
        in_channels: image channels (output has the same number).
        encoder: the U-Net's encoder widths.
        decoder: its decoder widths (``len(decoder) >= len(encoder)``).

    Shapes:
        ``(N, C, *spatial) -> (N, C, *spatial)``.
    """

    # Local (see INNTranslator.local): the translator stages may train it on crops.
    local = True

    def __init__(
        self,
        dim: int = 2,
        in_channels: int = 1,
        encoder: Sequence[int] = (16, 32, 32, 32),
        decoder: Sequence[int] = (32, 32, 32, 32, 16, 16),
    ) -> None:
        super().__init__()
        self.dim = check_dim(dim)
        self.in_channels = in_channels
        self.unet = UNet(dim, in_channels, encoder, decoder)
        self.head = conv(dim)(self.unet.out_channels, in_channels, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != self.dim + 2 or x.shape[1] != self.in_channels:
            raise ValueError(f"expected (N, {self.in_channels}, *spatial) with {self.dim} spatial dims, got {tuple(x.shape)}")
        padded, shape = pad_to_multiple(x, self.unet.multiple, mode="replicate")
        out = padded + self.head(self.unet(to_channels_last(padded)))
        return crop_to(out, shape).contiguous()
