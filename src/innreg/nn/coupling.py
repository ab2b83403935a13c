"""Invertible building blocks of the INN translator: squeeze, LU 1x1 convolution, affine coupling.

Every block maps ``(N, K, *spatial)`` to the same shape, has an exact ``inverse`` and keeps no state
between calls, so activations can be recomputed from a block's output (memory-saving backprop).

Odd image sizes are handled by the translator with a *mask* of real voxels on the zero-padded,
squeezed grid (``(1, K, *spatial)``, 1 = real voxel, 0 = padding). With a mask, every block keeps
padded positions exactly zero and never lets them change a real value irreversibly:

* the 1x1 convolution mixes channels only in cells whose ``2**dim`` voxels are all real and is the
  identity in border cells that contain padding (channel mixing there would leak real values into
  padded slots that the output crop throws away);
* the coupling multiplies its log-scales and shifts by the mask, so padded slots stay ``0``.

So ``inverse(forward(x))`` is exact on odd sizes too: the padded slots of the output are known zeros.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from innreg.core.enums import SubnetKind
from innreg.nn.ddc import DDCSubnet
from innreg.nn.layers import conv
from innreg.nn.reversible import InvertibleStep

_NEGATIVE_SLOPE = 0.2


def squeeze(x: Tensor) -> Tensor:
    """Space-to-channel: ``(N, C, *spatial) -> (N, C * 2**dim, *spatial / 2)`` (2x2 or 2x2x2 cells).

    Output channel ``c * 2**dim + o`` holds offset ``o`` (row-major over the cell) of input channel ``c``.
    Every spatial size must be even.
    """
    n, c, *spatial = x.shape
    dim = len(spatial)
    if any(s % 2 for s in spatial):
        raise ValueError(f"squeeze needs even spatial sizes, got {tuple(x.shape)}")
    half = [s // 2 for s in spatial]
    split = [v for h in half for v in (h, 2)]
    x = x.reshape(n, c, *split)
    # (N, C, h1, 2, h2, 2, ...) -> (N, C, 2, 2, ..., h1, h2, ...)
    order = [0, 1] + [3 + 2 * i for i in range(dim)] + [2 + 2 * i for i in range(dim)]
    return x.permute(order).reshape(n, c * 2**dim, *half)


def unsqueeze(x: Tensor, dim: int) -> Tensor:
    """Inverse of :func:`squeeze`: ``(N, C * 2**dim, *half) -> (N, C, *2 * half)``."""
    n, k, *half = x.shape
    if k % 2**dim or len(half) != dim:
        raise ValueError(f"cannot unsqueeze {tuple(x.shape)} in {dim}D")
    c = k // 2**dim
    x = x.reshape(n, c, *([2] * dim), *half)
    # (N, C, 2, ..., h1, ...) -> (N, C, h1, 2, h2, 2, ...)
    order = [0, 1] + [v for i in range(dim) for v in (2 + dim + i, 2 + i)]
    return x.permute(order).reshape(n, c, *[2 * h for h in half])


class ConvSubnet(nn.Module):
    """Plain convolutional coupling subnetwork (the "w/o DDC" ablation).

    ``conv_k(in -> hidden) -> act -> conv_1x1 -> act -> conv_1x1(hidden -> out)`` with LeakyReLU(0.2):
    the same receptive field (``k``) and a cost similar to :class:`~innreg.nn.ddc.DDCSubnet`, without
    the content-adaptive kernels and the attention. The last layer is zero-initialised (identity
    coupling at start).

    Shapes:
        ``(N, in_channels, *spatial) -> (N, out_channels, *spatial)``.
    """

    def __init__(self, in_channels: int, out_channels: int, hidden: int, dim: int, kernel_size: int = 5) -> None:
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be odd, got {kernel_size}")
        last = conv(dim)(hidden, out_channels, 1)
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        self.layers = nn.Sequential(
            conv(dim)(in_channels, hidden, kernel_size, padding=kernel_size // 2),
            nn.LeakyReLU(_NEGATIVE_SLOPE),
            conv(dim)(hidden, hidden, 1),
            nn.LeakyReLU(_NEGATIVE_SLOPE),
            last,
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)


def make_subnet(
    kind: SubnetKind | str, in_channels: int, out_channels: int, hidden: int, dim: int, kernel_size: int
) -> nn.Module:
    """Build a coupling subnetwork of the given kind (``ddc`` or ``conv``)."""
    kind = SubnetKind(kind)
    cls = DDCSubnet if kind is SubnetKind.DDC else ConvSubnet
    return cls(in_channels, out_channels, hidden, dim, kernel_size)


class InvertibleConv1x1(nn.Module):
    """LU-parametrised invertible 1x1 convolution (channel mixing), Glow-style.

    ``W = P @ L @ (U + diag(sign * exp(log_abs)))`` with ``P`` a fixed permutation, ``L`` unit lower
    triangular and ``U`` strictly upper triangular; initialised to the identity, so
    ``W`` starts well conditioned and stays invertible while ``log_abs`` is finite.

    Args:
        channels: ``K``.

    Shapes:
        ``(N, K, *spatial) -> (N, K, *spatial)`` for any number of spatial dims.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        # Identity start: with zero-initialised couplings the translator begins as the identity map,
        # so the registration network sees a clean image from step one (a random orthogonal start
        # scrambles each 2x2 cell into a checkerboard texture).
        p, lower, upper = torch.linalg.lu(torch.eye(channels, dtype=torch.float64))
        s = torch.diagonal(upper)
        self.register_buffer("perm", p.float())
        self.register_buffer("sign", torch.sign(s).float())
        self.register_buffer("lower_mask", torch.tril(torch.ones(channels, channels), -1))
        self.register_buffer("eye", torch.eye(channels))
        self.lower = nn.Parameter(torch.tril(lower, -1).float())
        self.upper = nn.Parameter(torch.triu(upper, 1).float())
        self.log_abs = nn.Parameter(torch.log(torch.abs(s)).float())

    def weight(self) -> Tensor:
        """The ``(K, K)`` mixing matrix ``W``."""
        lower = self.lower * self.lower_mask + self.eye
        upper = self.upper * self.lower_mask.T + torch.diag(self.sign * torch.exp(self.log_abs))
        return self.perm @ lower @ upper

    def _mix(self, x: Tensor, matrix: Tensor, full_cells: Tensor | None) -> Tensor:
        # Channels-last view: a (voxels, K) @ (K, K) product without copies.
        y = F.linear(x.movedim(1, -1), matrix).movedim(-1, 1)
        return y if full_cells is None else torch.where(full_cells, y, x)

    def forward(self, x: Tensor, full_cells: Tensor | None = None) -> Tensor:
        """``y = W x`` per voxel; ``full_cells`` (``(1, 1, *spatial)`` bool) limits mixing to real cells."""
        return self._mix(x, self.weight(), full_cells)

    def inverse(self, y: Tensor, full_cells: Tensor | None = None) -> Tensor:
        """``x = W^-1 y`` (inverse computed in float64 for accuracy)."""
        matrix = torch.linalg.inv(self.weight().double()).to(y.dtype)
        return self._mix(y, matrix, full_cells)


class AffineCoupling(nn.Module):
    """Affine coupling exactly as INNReg writes it, on a channel split ``x = (x1, x2)``::

        y1 = x1 * exp(s2(x2)) + t2(x2)
        y2 = x2 * exp(s1(y1)) + t1(y1)

    and the inverse in reverse order. One subnet per ``(s, t)`` pair produces both. Log-scales are
    soft-clamped, ``s = clamp * tanh(raw / clamp)``, so ``exp(s)`` lies in ``[e^-clamp, e^clamp]``.

    Args:
        channels: ``K`` (>= 2); ``x1`` takes the first ``K // 2`` channels.
        dim: 2 or 3.
        hidden: subnet width.
        subnet: ``ddc`` or ``conv``.
        kernel_size: subnet kernel size.
        clamp: bound on ``|s|``.
    """

    def __init__(
        self,
        channels: int,
        dim: int,
        hidden: int,
        subnet: SubnetKind | str = SubnetKind.DDC,
        kernel_size: int = 5,
        clamp: float = 1.5,
    ) -> None:
        super().__init__()
        if channels < 2:
            raise ValueError(f"a coupling needs at least 2 channels, got {channels}")
        if clamp <= 0:
            raise ValueError(f"clamp must be > 0, got {clamp}")
        self.split = channels // 2
        rest = channels - self.split
        self.clamp = clamp
        self.net2 = make_subnet(subnet, rest, 2 * self.split, hidden, dim, kernel_size)  # x2 -> s2, t2
        self.net1 = make_subnet(subnet, self.split, 2 * rest, hidden, dim, kernel_size)  # y1 -> s1, t1

    def _scale_shift(self, net: nn.Module, cond: Tensor, mask: Tensor | None) -> tuple[Tensor, Tensor]:
        raw, shift = net(cond).chunk(2, dim=1)
        log_scale = self.clamp * torch.tanh(raw / self.clamp)
        if mask is not None:  # padded slots: scale 1, shift 0, so they stay exactly 0
            log_scale, shift = log_scale * mask, shift * mask
        return log_scale, shift

    def half(self, x: Tensor, mask: Tensor | None, second: bool, reverse: bool = False) -> Tensor:
        """One half of the coupling (or its inverse), an invertible map on its own.

        First half: ``x1 <- x1 * exp(s2(x2)) + t2(x2)``; second half: ``x2 <- x2 * exp(s1(x1)) + t1(x1)``
        (``x1`` is then ``y1``). The conditioning part passes through unchanged.
        """
        a, b = x[:, : self.split], x[:, self.split :]  # a = first split, b = second
        if second:
            a, b = b, a  # transform the second split, conditioned on the first
        net = self.net1 if second else self.net2
        m = None if mask is None else (mask[:, self.split :] if second else mask[:, : self.split])
        s, t = self._scale_shift(net, b, m)
        a = (a - t) * torch.exp(-s) if reverse else a * torch.exp(s) + t
        return torch.cat([b, a] if second else [a, b], dim=1)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """``(N, K, *spatial) -> (N, K, *spatial)``; ``mask`` is ``(1, K, *spatial)`` or ``None``."""
        return self.half(self.half(x, mask, second=False), mask, second=True)

    def inverse(self, y: Tensor, mask: Tensor | None = None) -> Tensor:
        """Exact inverse of :meth:`forward`."""
        return self.half(self.half(y, mask, second=True, reverse=True), mask, second=False, reverse=True)


class InvertibleBlock(nn.Module):
    """One translator block: LU 1x1 convolution (channel mixing), then :class:`AffineCoupling`."""

    def __init__(
        self,
        channels: int,
        dim: int,
        hidden: int,
        subnet: SubnetKind | str = SubnetKind.DDC,
        kernel_size: int = 5,
        clamp: float = 1.5,
    ) -> None:
        super().__init__()
        self.mixing = InvertibleConv1x1(channels)
        self.coupling = AffineCoupling(channels, dim, hidden, subnet, kernel_size, clamp)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """``(N, K, *spatial) -> (N, K, *spatial)``; ``mask`` as in :class:`AffineCoupling`."""
        return self.coupling(self.mixing(x, _full_cells(mask)), mask)

    def inverse(self, y: Tensor, mask: Tensor | None = None) -> Tensor:
        """Exact inverse of :meth:`forward`."""
        return self.mixing.inverse(self.coupling.inverse(y, mask), _full_cells(mask))

    def steps(self) -> list[InvertibleStep]:
        """The block as three invertible steps (mixing, coupling halves) whose composition is
        :meth:`forward`: the units of memory-saving backprop, one subnet each."""
        mixing, coupling = self.mixing, self.coupling
        return [
            InvertibleStep(
                lambda x, m: mixing(x, _full_cells(m)), lambda y, m: mixing.inverse(y, _full_cells(m)), mixing
            ),
            InvertibleStep(
                lambda x, m: coupling.half(x, m, second=False),
                lambda y, m: coupling.half(y, m, second=False, reverse=True),
                coupling.net2,
            ),
            InvertibleStep(
                lambda x, m: coupling.half(x, m, second=True),
                lambda y, m: coupling.half(y, m, second=True, reverse=True),
                coupling.net1,
            ),
        ]


def _full_cells(mask: Tensor | None) -> Tensor | None:
    """``(1, 1, *spatial)`` bool: cells whose every slot is a real voxel."""
    return None if mask is None else mask.amin(dim=1, keepdim=True).bool()
