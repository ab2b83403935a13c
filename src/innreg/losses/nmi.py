"""Differentiable normalized mutual information (NMI) and the NMI barrier loss of INNReg.

The joint intensity histogram is a Gaussian Parzen-window estimate: every voxel spreads unit mass over
the ``bins`` bin centres with weights ``softmax(-(u - k)^2 / (2 sigma^2))`` where ``u`` is its intensity
in bin units. With ``Wa, Wb`` the ``(N, V, bins)`` voxel weights of the two images, the joint histogram
is ``Wa^T @ Wb``; the ``(N, V, bins, bins)`` tensor is never formed, so a 64^3 volume with 32 bins needs
only a few ``(N, V, 32)`` tensors.

Intensity range: per sample, from the data (min and max of each image inside the mask); the first bin
centre sits at the minimum, the last at the maximum. Nothing is clamped to ``[0, 1]``, so any intensity
scale (CT in HU, raw MR) works. The range is treated as a constant when differentiating (as a fixed
binning): NMI is nearly invariant to affine intensity rescaling, and letting gradients flow through the
min/max would put all of that small effect on the one or two extreme voxels.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from innreg.core.enums import NMINormalization

# Guards logs and ratios; far below any entropy a real histogram has.
_EPS = 1e-10
# Kernel tails below exp(-_TAIL) ~ 1e-15 of a voxel's peak weight are cut to exact zeros: they carry no
# information, and in float32 their products are subnormal numbers that slow the histogram matmul ~20x.
_TAIL = 34.5


def _check_inputs(a: Tensor, b: Tensor, mask: Tensor | None) -> None:
    if a.dim() not in (4, 5) or a.shape[1] != 1:
        raise ValueError(f"images must have shape (N, 1, *spatial), 2 or 3 spatial dims, got {tuple(a.shape)}")
    if a.shape != b.shape:
        raise ValueError(f"images must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    if mask is not None:
        batch_ok = mask.shape[0] in (1, a.shape[0])
        if mask.dim() != a.dim() or mask.shape[1] != 1 or mask.shape[2:] != a.shape[2:] or not batch_ok:
            raise ValueError(f"mask must have shape (N or 1, 1, *spatial) = {tuple(a.shape)}, got {tuple(mask.shape)}")


def _parzen_weights(x: Tensor, weights: Tensor, bins: int, sigma: float) -> Tensor:
    """``(N, V, bins)`` Parzen weights of ``x`` (``(N, V)``); each voxel's row sums to 1.

    The bin range is ``[min, max]`` of ``x`` where ``weights > 0`` (``[0, 0]`` if there is no such voxel).
    """
    inside = weights > 0
    with torch.no_grad():
        lo = torch.where(inside, x, torch.full_like(x, float("inf"))).amin(dim=1, keepdim=True)
        hi = torch.where(inside, x, torch.full_like(x, float("-inf"))).amax(dim=1, keepdim=True)
        empty = ~torch.isfinite(lo)
        lo = torch.where(empty, torch.zeros_like(lo), lo)
        hi = torch.where(empty, torch.zeros_like(hi), hi)
        # A constant image puts every voxel at bin 0 instead of dividing by a zero range.
        scale = (bins - 1) / (hi - lo).clamp_min(torch.finfo(x.dtype).tiny)
        scale = torch.where(hi > lo, scale, torch.zeros_like(scale))
    # Voxels outside the mask may fall outside the range; they carry zero weight, clamping keeps them finite.
    u = ((x - lo) * scale).clamp(0, bins - 1)
    centres = torch.arange(bins, device=x.device, dtype=x.dtype)
    dist2 = (u.unsqueeze(-1) - centres).square()
    nearest2 = (u - u.round()).square().unsqueeze(-1)  # squared distance to the closest centre
    tail = dist2 > nearest2 + 2 * sigma**2 * _TAIL
    logits = (dist2 * (-0.5 / sigma**2)).masked_fill(tail, float("-inf"))
    return torch.softmax(logits, dim=-1)  # stable for any sigma: no 0/0 when all kernels underflow


def _entropy(p: Tensor, dims: tuple[int, ...]) -> Tensor:
    return -(p * torch.log(p + _EPS)).sum(dim=dims)


def nmi(
    a: Tensor,
    b: Tensor,
    bins: int = 32,
    sigma: float | None = None,
    mask: Tensor | None = None,
    normalization: NMINormalization | str = NMINormalization.SYMMETRIC,
) -> Tensor:
    """Normalized mutual information per sample, differentiable in ``a`` and ``b``.

    Args:
        a: ``(N, 1, *spatial)`` image, 2D or 3D, any intensity range.
        b: image of the same shape.
        bins: number of histogram bins per image (>= 2).
        sigma: Gaussian Parzen kernel standard deviation in bin units. Default 0.5 (the width MONAI's
            and VoxelMorph's Parzen MI use): the kernel's full width at half maximum is ~1.2 bins, so a
            voxel feeds mainly its own bin and its two neighbours, and every intensity, not only those
            near bin edges, gets a usable gradient. A narrower kernel sharpens the histogram (higher
            self-NMI, steeper peak) but concentrates the gradient on voxels near bin edges, which is
            noisy for small or piecewise-constant images; a wider one blurs the histogram and flattens
            the peak. With 32 bins and 0.5, ``nmi(x, x)`` of a smooth image is about 0.7 (symmetric).
        mask: optional ``(N or 1, 1, *spatial)`` voxel weights (``{0, 1}`` or soft, >= 0); only voxels with
            weight > 0 set the intensity range and each voxel counts with its weight.
        normalization: see :class:`NMINormalization`.

    Returns:
        ``(N,)`` NMI values. Never NaN: a constant image gives 0 (``symmetric``) or 1 (``studholme``),
        as does an all-zero mask.
    """
    _check_inputs(a, b, mask)
    normalization = NMINormalization(normalization)
    if bins < 2:
        raise ValueError(f"bins must be >= 2, got {bins}")
    sigma = 0.5 if sigma is None else float(sigma)
    if sigma <= 0:
        raise ValueError(f"sigma must be > 0, got {sigma}")
    dtype = torch.promote_types(a.dtype, torch.float32)
    n = a.shape[0]
    a = a.reshape(n, -1).to(dtype)
    b = b.reshape(n, -1).to(dtype)
    weights = torch.ones_like(a) if mask is None else mask.to(dtype).reshape(mask.shape[0], -1).expand_as(a)
    wa = _parzen_weights(a, weights, bins, sigma)
    wb = _parzen_weights(b, weights, bins, sigma)
    if mask is not None:
        wa = wa * weights.unsqueeze(-1)
    total = weights.sum(dim=1).clamp_min(_EPS).view(n, 1, 1)
    joint = torch.bmm(wa.transpose(1, 2), wb) / total  # (N, bins, bins)
    h_a = _entropy(joint.sum(dim=2), (1,))
    h_b = _entropy(joint.sum(dim=1), (1,))
    h_ab = _entropy(joint, (1, 2))
    if normalization is NMINormalization.SYMMETRIC:
        return 2 * (h_a + h_b - h_ab) / (h_a + h_b + _EPS)
    return (h_a + h_b + _EPS) / (h_ab + _EPS)


def nmi_barrier(nmi_value: Tensor, tau: float = 0.0, eps: float = 0.01) -> Tensor:
    """Barrier ``-log(NMI - tau)`` with a linear continuation below the barrier.

    For ``z = NMI - tau >= eps`` the value is ``-log(z)``. For ``z < eps`` (including ``z <= 0``, where the
    logarithm is undefined) it is the tangent of ``-log`` at ``eps``: ``-log(eps) - (z - eps) / eps``.
    Value and slope match at ``z = eps`` (C1), so the loss is finite, differentiable and strictly
    decreasing in NMI everywhere, with slope ``-1/eps`` below the barrier.

    Args:
        nmi_value: NMI values, any shape.
        tau: barrier threshold (for ``symmetric`` NMI in ``[0, 1)``; for ``studholme`` in ``[1, 2)``).
        eps: where the logarithm hands over to its tangent, > 0.

    Returns:
        Elementwise barrier values, same shape as ``nmi_value``.
    """
    if eps <= 0:
        raise ValueError(f"eps must be > 0, got {eps}")
    z = nmi_value - tau
    log_branch = -torch.log(z.clamp_min(eps))  # clamped so the unused branch has no inf/NaN gradient
    linear_branch = -torch.log(torch.as_tensor(eps, dtype=z.dtype, device=z.device)) - (z - eps) / eps
    return torch.where(z >= eps, log_branch, linear_branch)


def multiscale_nmi(
    warped: Tensor,
    fixed: Tensor,
    bins: int = 32,
    scales: int = 1,
    mask: Tensor | None = None,
    sigma: float | None = None,
    normalization: NMINormalization | str = NMINormalization.SYMMETRIC,
) -> Tensor:
    """Per-sample :func:`nmi` ``(N,)`` averaged over ``scales`` levels of a 2x average-pooling pyramid
    (levels whose smallest axis would fall below 16 voxels are left out); ``mask`` (``(N, 1, *S)``
    voxel weights) is pooled alongside. Coarse levels widen the capture range of the gradient."""
    pool = (F.avg_pool2d, F.avg_pool3d)[warped.dim() - 4]
    values = []
    for level in range(scales):
        if level:
            if min(warped.shape[2:]) < 16:
                break
            warped, fixed = pool(warped, 2), pool(fixed, 2)
            mask = None if mask is None else pool(mask, 2)
        values.append(nmi(warped, fixed, bins, sigma, mask, normalization))
    return torch.stack(values).mean(0)


class _NMISimilarity(nn.Module):
    """Shared set-up of the two NMI losses: the histogram settings and the pyramid."""

    def __init__(
        self,
        bins: int = 32,
        sigma: float | None = None,
        normalization: NMINormalization | str = NMINormalization.SYMMETRIC,
        scales: int = 1,
    ) -> None:
        super().__init__()
        if scales < 1:
            raise ValueError(f"scales must be >= 1, got {scales}")
        self.bins, self.sigma, self.scales = bins, sigma, scales
        self.normalization = NMINormalization(normalization)

    def nmi_values(self, warped: Tensor, fixed: Tensor, mask: Tensor | None = None) -> Tensor:
        """Per-sample NMI ``(N,)`` over the pyramid (see :func:`multiscale_nmi`)."""
        return multiscale_nmi(warped, fixed, self.bins, self.scales, mask, self.sigma, self.normalization)

    def from_values(self, values: Tensor) -> Tensor:
        """The scalar loss from per-sample NMI values ``(N,)``."""
        raise NotImplementedError

    def forward(self, warped: Tensor, fixed: Tensor, mask: Tensor | None = None) -> Tensor:
        """Scalar loss for ``(N, 1, *spatial)`` images and an optional ``(N or 1, 1, *spatial)`` mask."""
        return self.from_values(self.nmi_values(warped, fixed, mask))


class NMIBarrierLoss(_NMISimilarity):
    """INNReg registration similarity: batch mean of :func:`nmi_barrier` of the (multi-scale) NMI.

    This is the loss the joint training optimises (:mod:`innreg.objective` builds it from the
    ``loss`` config section).

    Args:
        tau: barrier threshold on NMI.
        eps: hand-over point of the linear continuation (see :func:`nmi_barrier`).
        bins, sigma, normalization: passed to :func:`nmi`.
        scales: pyramid levels averaged (see :func:`multiscale_nmi`); 1 = the image alone.
    """

    def __init__(
        self,
        tau: float = 0.0,
        eps: float = 0.01,
        bins: int = 32,
        sigma: float | None = None,
        normalization: NMINormalization | str = NMINormalization.SYMMETRIC,
        scales: int = 1,
    ) -> None:
        super().__init__(bins, sigma, normalization, scales)
        if eps <= 0:
            raise ValueError(f"eps must be > 0, got {eps}")
        self.tau, self.eps = tau, eps

    def from_values(self, values: Tensor) -> Tensor:
        return nmi_barrier(values, self.tau, self.eps).mean()


class NMILoss(_NMISimilarity):
    """Plain NMI similarity ``1 - NMI`` averaged over the batch (the "w/o barrier" ablation).

    For ``studholme`` normalization the value lies in ``[-1, 0]``; the offset does not change gradients.
    Arguments as :class:`NMIBarrierLoss` without the barrier's.
    """

    def from_values(self, values: Tensor) -> Tensor:
        return (1 - values).mean()
