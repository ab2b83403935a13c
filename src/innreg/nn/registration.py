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
        velocity: ``(N, dim, *spatial)`` stationary velocity of the local deformation, or ``None``
            for a plain displacement.
        local_ddf: ``(N, dim, *spatial)`` the local (U-Net) part of ``ddf``; equals ``ddf`` without the
            affine stage. Smoothness is measured on it, so the affine part is not penalised.
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
        affine_pool, affine_hidden: its head (see :class:`~innreg.nn.affine.AffineNet`).
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
    ) -> None:
        super().__init__()
        self.dim = check_dim(dim)
        if int_steps < 0:
            raise ValueError(f"int_steps must be >= 0, got {int_steps}")
        self.diffeomorphic = diffeomorphic
        self.int_steps = int_steps
        self.inverse_iterations = inverse_iterations
        self.affine = AffineNet(dim, pool=affine_pool, hidden=affine_hidden) if affine else None
        self.unet = UNet(dim, 2, encoder, decoder)
        self.flow = conv(dim)(self.unet.out_channels, dim, 3, padding=1)
        # Tiny initial fields: training starts from (almost) the identity transform.
        nn.init.normal_(self.flow.weight, std=1e-5)
        nn.init.zeros_(self.flow.bias)

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
        affine = None
        if self.affine is not None:
            affine = self.affine(moving, fixed)
            affine_map = Transform.from_affine(*affine, tuple(moving.shape[2:]), with_inverse)
            moving = warp(moving, affine_map.ddf)
        x, shape = pad_to_multiple(torch.cat([moving, fixed], dim=1), self.unet.multiple)
        # Fields in float32 even under autocast: squaring a half-precision field compounds its error.
        field = crop_to(self.flow(self.unet(to_channels_last(x))), shape).float().contiguous()
        if self.diffeomorphic:
            local = integrate_velocity(field, self.int_steps)
            local_inverse = integrate_velocity(-field, self.int_steps) if with_inverse else None
            velocity = field
        else:
            local = field
            local_inverse = invert_field(field, self.inverse_iterations) if with_inverse else None
            velocity = None
        if affine is None:
            return RegistrationOutput(local, local_inverse, velocity, local)
        total = affine_map.then(Transform(local, local_inverse))
        return RegistrationOutput(total.ddf, total.inverse, velocity, local, affine)
