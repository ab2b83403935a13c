"""VoxelMorph-style registration network with an optional diffeomorphic (velocity) head."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
import torch.nn as nn
from torch import Tensor

from innreg.core.transform import Transform
from innreg.nn.affine import AffineNet
from innreg.nn.layers import check_dim, conv, crop_to, pad_to_multiple
from innreg.nn.layers import to_channels_last
from innreg.nn.unet import UNet
from innreg.core.warp import integrate_velocity, invert_field, warp


class RegistrationOutput(NamedTuple):
    """What :class:`RegistrationNet` predicts; fields follow :mod:`innreg.core.warp` (voxels, pull-back).

    Attributes:
        ddf: ``(N, dim, *spatial)`` displacement: ``warp(moving, ddf)`` aligns moving to fixed.
        inverse_ddf: ``(N, dim, *spatial)`` inverse displacement (``warp(fixed, inverse_ddf)`` aligns
            fixed to moving), or ``None`` when not requested.
        velocity: ``(N, dim, *spatial)`` stationary velocity of the (first pass's) local deformation,
            or ``None`` for a plain displacement.
        local_ddf: ``(N, dim, *spatial)`` the local (U-Net) part of ``ddf`` (all passes of a cascade
            chained); equals ``ddf`` without the affine stage. Smoothness is measured on it, so the
            affine part is not penalised.
        affine: ``(A, t)`` of the affine stage (``(N, dim, dim)``, ``(N, dim)`` voxels) or ``None``.
    """

    ddf: Tensor
    inverse_ddf: Tensor | None
    velocity: Tensor | None
    local_ddf: Tensor
    affine: tuple[Tensor, Tensor] | None = None

    @property
    def transform(self) -> Transform:
        """``ddf`` and ``inverse_ddf`` as a :class:`~innreg.core.transform.Transform` (a chain stage's output)."""
        return Transform(self.ddf, self.inverse_ddf)


class RegistrationNet(nn.Module):
    """U-Net on ``concat(moving, fixed)`` predicting a (diffeomorphic) displacement field.

    With ``diffeomorphic=True`` the head predicts a stationary velocity ``v``; ``ddf = exp(v)`` by
    scaling and squaring and ``inverse_ddf = exp(-v)``. Otherwise the head predicts ``ddf`` directly
    and the inverse comes from :func:`~innreg.core.warp.invert_field` (fixed-point iteration).
    With ``affine=True`` an :class:`~innreg.nn.affine.AffineNet` first aligns the pair globally; the
    U-Net sees the affinely warped moving image and the output is the exact composition
    ``x -> affine(x + local(x))``.
    With ``cascades > 1`` further U-Nets (own weights, same widths) follow: each sees the moving image
    warped by the map so far and adds its own field, chained after it (a recursive cascade, Zhao et al.
    2019); their heads start at ~0, so a cascade starts as the single pass.
    Inputs of any size are zero-padded to a multiple of ``2 ** len(encoder)`` and the fields cropped
    back (before integration, so ``exp(-v)`` is the exact-up-to-discretisation inverse on the image grid).

    Args:
        dim: 2 or 3.
        encoder: U-Net encoder widths (each level halves the resolution).
        decoder: U-Net decoder widths (``len(decoder) >= len(encoder)``).
        diffeomorphic: velocity + scaling and squaring, or a plain displacement.
        int_steps: scaling-and-squaring steps.
        inverse_iterations: fixed-point iterations for the inverse of a plain displacement.
        affine: put a global affine stage in front of the U-Net.
        affine_pool, affine_hidden, affine_slope: its head (see :class:`~innreg.nn.affine.AffineNet`).
        cascades: U-Net passes (1 = the single U-Net of VoxelMorph and the paper).
    """

    def __init__(
        self,
        dim: int = 2,
        encoder: Sequence[int] = (16, 32, 32, 32),
        decoder: Sequence[int] = (32, 32, 32, 32, 16),
        diffeomorphic: bool = True,
        int_steps: int = 7,
        inverse_iterations: int = 20,
        affine: bool = False,
        affine_pool: int = 4,
        affine_hidden: int = 64,
        affine_slope: float = 0.2,
        cascades: int = 1,
    ) -> None:
        super().__init__()
        self.dim = check_dim(dim)
        if int_steps < 0:
            raise ValueError(f"int_steps must be >= 0, got {int_steps}")
        if cascades < 1:
            raise ValueError(f"cascades must be >= 1, got {cascades}")
        self.diffeomorphic = diffeomorphic
        self.int_steps = int_steps
        self.inverse_iterations = inverse_iterations
        self.affine = AffineNet(dim, pool=affine_pool, hidden=affine_hidden, slope=affine_slope) if affine else None
        # The first pass keeps the attribute names of the single-U-Net design, so its model files load.
        self.unet, self.flow = _pass(dim, encoder, decoder)
        self.cascade = nn.ModuleList(nn.ModuleList(_pass(dim, encoder, decoder)) for _ in range(cascades - 1))

    def forward(self, moving: Tensor, fixed: Tensor, with_inverse: bool = True) -> RegistrationOutput:
        """Predict the field that warps ``moving`` onto ``fixed``.

        Args:
            moving: ``(N, 1, *spatial)`` image.
            fixed: ``(N, 1, *spatial)`` image on the same grid.
            with_inverse: also compute ``inverse_ddf`` (skip it in training to save time).

        Returns:
            :class:`RegistrationOutput` with fields of shape ``(N, dim, *spatial)`` in voxels.
        """
        if moving.shape != fixed.shape or moving.dim() != self.dim + 2 or moving.shape[1] != 1:
            raise ValueError(
                f"moving and fixed must both be (N, 1, *spatial) with {self.dim} spatial dims, "
                f"got {tuple(moving.shape)} and {tuple(fixed.shape)}"
            )
        affine, original = None, moving
        if self.affine is not None:
            affine = self.affine(moving, fixed)
            affine_map = Transform.from_affine(*affine, tuple(moving.shape[2:]), with_inverse)
            moving = warp(moving, affine_map.ddf)
        velocity, local = self._local(self.unet, self.flow, moving, fixed, with_inverse)
        for unet, flow in self.cascade:
            # Only the map so far is needed here, to warp the next pass's input: chain it without inverses.
            start = local if affine is None else affine_map.then(Transform(local.ddf))
            local = local.then(self._local(unet, flow, warp(original, start.ddf), fixed, with_inverse)[1])
        if affine is None:
            return RegistrationOutput(local.ddf, local.inverse, velocity, local.ddf)
        total = affine_map.then(local)
        return RegistrationOutput(total.ddf, total.inverse, velocity, local.ddf, affine)

    def _local(
        self, unet: UNet, flow: nn.Module, moving: Tensor, fixed: Tensor, with_inverse: bool
    ) -> tuple[Tensor | None, Transform]:
        """One U-Net pass on an (already warped) pair: its velocity (``None`` for a plain displacement)
        and its map."""
        x, shape = pad_to_multiple(torch.cat([moving, fixed], dim=1), unet.multiple)
        # Fields in float32 even under autocast: squaring a half-precision field compounds its error.
        field = crop_to(flow(unet(to_channels_last(x))), shape).float().contiguous()
        if self.diffeomorphic:
            inverse = integrate_velocity(-field, self.int_steps) if with_inverse else None
            return field, Transform(integrate_velocity(field, self.int_steps), inverse)
        inverse = invert_field(field, self.inverse_iterations) if with_inverse else None
        return None, Transform(field, inverse)


def _pass(dim: int, encoder: Sequence[int], decoder: Sequence[int]) -> tuple[UNet, nn.Module]:
    """A U-Net on ``concat(moving, fixed)`` and its field head, initialised to tiny fields: training
    starts from (almost) the identity transform."""
    unet = UNet(dim, 2, encoder, decoder)
    flow = conv(dim)(unet.out_channels, dim, 3, padding=1)
    nn.init.normal_(flow.weight, std=1e-5)
    nn.init.zeros_(flow.bias)
    return unet, flow
