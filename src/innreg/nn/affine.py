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
from innreg.nn.layers import adaptive_avg_pool, to_channels_last
from innreg.nn.unet import ConvAct


class AffineNet(nn.Module):
    """Regress an affine map from ``concat(moving, fixed)``.

    Stride-2 convolutions, adaptive average pooling to a fixed ``pool ** dim`` grid of cells and a head
    on the flattened cells (one hidden layer of ``hidden`` leaky-ReLU units, or linear for ``hidden=0``)
    whose last layer is zero-initialised give a log-matrix ``M`` and a translation;
    ``A = expm(M)`` has a positive determinant by construction (no reflections, no folding) and the
    network starts at the identity.

    The pooled grid keeps *where* each feature is: a rotation or scaling shows as local shifts whose
    direction depends on the position, which a global average (``pool=1``, the design before
    ``model.affine_pool`` existed) sums away. The grid size does not depend on the input size, so one
    network takes images of any size. Measured on a synthetic mono-modal task (random rotations of
    10 degrees, scalings of 10 %, shifts of 5 %, 128x128, 2000 steps of an MSE loss): field error 4.2
    voxels with global pooling and a linear head, 2.5 with the 4x4 grid, 0.85 with the grid and 64 hidden
    units (``benchmarks/RESULTS.md``).

    The hidden units leak (``slope``): with a plain ReLU (``slope=0``, the design of model files before
    ``model.affine_slope``) every unit of the head died in the joint steps of two of three default
    trainings on the PD -> T1 set, negative for every pair, so the stage predicted one map for every pair
    and no later loss could revive it (``benchmarks/RESULTS.md`` section 10).

    Args:
        dim: 2 or 3.
        channels: widths of the stride-2 conv levels.
        pool: cells per axis of the pooled feature grid (1 = global average pooling).
        hidden: units of the head's hidden layer (0 = a linear head).
        slope: negative slope of the hidden layer's leaky ReLU (0 = a plain ReLU).

    Shapes:
        ``forward(moving, fixed)`` with ``(N, 1, *S)`` each returns ``(A, t)``: ``(N, dim, dim)`` and
        ``(N, dim)`` in voxels. Features ``(N, C, *S / 2 ** len(channels))`` are pooled to
        ``(N, C, pool, ..., pool)`` and flattened to ``(N, C * pool ** dim)`` for the head.
    """

    def __init__(
        self,
        dim: int = 2,
        channels: tuple[int, ...] = (16, 32, 32, 32, 32),
        pool: int = 4,
        hidden: int = 64,
        slope: float = 0.2,
    ) -> None:
        super().__init__()
        self.dim = check_dim(dim)
        if pool < 1 or hidden < 0 or slope < 0:
            raise ValueError(f"need pool >= 1, hidden >= 0 and slope >= 0, got {pool}, {hidden} and {slope}")
        layers, prev = [], 2
        for width in channels:
            layers.append(ConvAct(dim, prev, width, stride=2))
            prev = width
        self.encoder = nn.Sequential(*layers)
        self.pool = adaptive_avg_pool(dim)(pool)
        last = nn.Linear(hidden or prev * pool**dim, dim * dim + dim)
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        self.head = nn.Sequential(nn.Linear(prev * pool**dim, hidden), nn.LeakyReLU(slope), last) if hidden else last

    def forward(self, moving: Tensor, fixed: Tensor) -> tuple[Tensor, Tensor]:
        features = self.encoder(to_channels_last(torch.cat([moving, fixed], dim=1)))
        # Geometry in float32 even under autocast: half-precision matrix_exp returns NaN.
        params = self.head(self.pool(features).flatten(1)).float()
        n, d = params.shape[0], self.dim
        matrix = torch.linalg.matrix_exp(params[:, : d * d].view(n, d, d))
        # The head predicts translations as fractions of the image size, so its scale does not depend on S.
        size = torch.tensor(moving.shape[2:], device=params.device, dtype=params.dtype)
        return matrix, params[:, d * d :] * size
