"""Global affine stage in front of the deformable registration network.

Large misalignments (rotation, scaling, translation) are out of reach of a U-Net's local field after a
short training; a small CNN regresses one affine map per pair first (as ANTs runs affine before SyN),
and the U-Net then predicts the remaining local deformation.
"""

from __future__ import annotations

import torch
import torch.nn as nn
from torch import Tensor

from innreg.core.dims import check_dim
from innreg.nn.layers import to_channels_last
from innreg.nn.unet import ConvAct


class AffineNet(nn.Module):
    """Regress an affine map from ``concat(moving, fixed)``.

    Stride-2 convolutions, global average pooling and a zero-initialised linear head give a
    log-matrix ``M`` and a translation; ``A = expm(M)`` has a positive determinant by construction (no
    reflections, no folding) and the network starts at the identity.

    Args:
        dim: 2 or 3.
        channels: widths of the stride-2 conv levels.

    Shapes:
        ``forward(moving, fixed)`` with ``(N, 1, *S)`` each returns ``(A, t)``: ``(N, dim, dim)`` and
        ``(N, dim)`` in voxels.
    """

    def __init__(self, dim: int = 2, channels: tuple[int, ...] = (16, 32, 32, 32, 32)) -> None:
        super().__init__()
        self.dim = check_dim(dim)
        layers, prev = [], 2
        for width in channels:
            layers.append(ConvAct(dim, prev, width, stride=2))
            prev = width
        self.encoder = nn.Sequential(*layers)
        self.head = nn.Linear(prev, dim * dim + dim)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, moving: Tensor, fixed: Tensor) -> tuple[Tensor, Tensor]:
        features = self.encoder(to_channels_last(torch.cat([moving, fixed], dim=1)))
        # Geometry in float32 even under autocast: half-precision matrix_exp returns NaN.
        params = self.head(features.mean(dim=tuple(range(2, self.dim + 2)))).float()
        n, d = params.shape[0], self.dim
        matrix = torch.linalg.matrix_exp(params[:, : d * d].view(n, d, d))
        # The head predicts translations as fractions of the image size, so its scale does not depend on S.
        size = torch.tensor(moving.shape[2:], device=params.device, dtype=params.dtype)
        return matrix, params[:, d * d :] * size
