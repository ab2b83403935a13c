"""Test-time refinement: a short instance optimisation that starts from the network's output.

The network predicts a field in one pass; its accuracy is limited by how far a CPU-sized training
budget takes it. Refinement then starts from the network's affine stage (``RefineConfig.init``,
default) or its full field, corrects it by an affine map on the coarse levels
(``RefineConfig.affine_factors``), and optimises, for this one pair, a stationary velocity field ``v`` on
a coarse-to-fine pyramid (``RefineConfig.factors``) so that the MIND descriptors of the warped moving
image match those of the fixed image, with diffusion regularisation on ``exp(v)``. MIND is a
structural descriptor, so the loss is mono-modal although the pair is not; the same pyramid with NMI
reached a lower Dice (measured in ``benchmarks/RESULTS.md``). The velocity lives on a grid at most
``1 / grid_factor`` as fine as the image, which keeps the field smooth and fold-free.

The result is the exact composition of the network's map, the affine correction ``a`` and the
velocity's map ``r`` (pull-back convention of :mod:`innreg.nn.warp`, voxel units):
``warp(moving, ddf) = warp(warp(warp(moving, net_ddf), a), r)``, and the inverse composes the inverses
in reverse order.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from innreg.config import RefineConfig
from innreg.losses import gradient_smoothness, mind_descriptor
from innreg.nn.affine import affine_ddf, invert_affine
from innreg.nn.warp import compose, integrate_velocity, resize_field, warp


def _level_shape(shape: tuple[int, ...], factor: int) -> tuple[int, ...]:
    return tuple(max(2, math.ceil(s / factor)) for s in shape)


def _downsample(image: Tensor, shape: tuple[int, ...]) -> Tensor:
    return image if tuple(image.shape[2:]) == shape else F.interpolate(image, size=shape, mode="area")


def _descriptors(warped: Tensor, fixed: Tensor, level: tuple[int, ...], config: RefineConfig) -> tuple[Tensor, Tensor]:
    """MIND descriptors of the two images on a pyramid level (no gradient: they are constants)."""
    with torch.no_grad():
        source = mind_descriptor(_downsample(warped, level), config.mind_radius, config.mind_dilation)
        target = mind_descriptor(_downsample(fixed, level), config.mind_radius, config.mind_dilation)
    return source, target


def optimise_affine(warped: Tensor, fixed: Tensor, config: RefineConfig) -> tuple[Tensor, Tensor]:
    """Affine ``(A, t)`` (``(1, dim, dim)``, ``(1, dim)`` full-resolution voxels, the parametrisation of
    :func:`~innreg.nn.affine.affine_ddf`) aligning ``warped`` to ``fixed`` by MIND on the coarse levels
    ``config.affine_factors``; ``A = expm(M)``, so no reflections.

    It widens the capture range: a global misalignment that the network's affine stage left behind is
    too large for the smooth velocity field to absorb.
    """
    shape = tuple(fixed.shape[2:])
    dim = len(shape)
    log_matrix = torch.zeros(1, dim, dim, device=fixed.device, dtype=fixed.dtype, requires_grad=True)
    translation = torch.zeros(1, dim, device=fixed.device, dtype=fixed.dtype, requires_grad=True)
    with torch.enable_grad():
        for factor, steps in zip(config.affine_factors, config.affine_steps):
            level = _level_shape(shape, factor)
            source, target = _descriptors(warped, fixed, level, config)
            # Full-resolution voxels to level voxels (align_corners): p_L = D p_S, so A_L = D A D^-1.
            d = torch.tensor([(l - 1) / max(s - 1, 1) for l, s in zip(level, shape)], device=fixed.device, dtype=fixed.dtype)
            optimiser = torch.optim.Adam([{"params": [log_matrix], "lr": 0.01}, {"params": [translation], "lr": config.lr}])
            for _ in range(steps):
                matrix = torch.matrix_exp(log_matrix) * d.view(1, dim, 1) / d.view(1, 1, dim)
                field = affine_ddf(matrix, translation * d, level)
                loss = (warp(source, field) - target).pow(2).mean()
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                optimiser.step()
    return torch.matrix_exp(log_matrix).detach(), translation.detach()


def optimise_velocity(warped: Tensor, fixed: Tensor, config: RefineConfig) -> Tensor:
    """Velocity ``(1, dim, *G)`` (voxels of its grid ``G``) aligning ``warped`` to ``fixed``.

    Args:
        warped: ``(1, 1, *S)`` moving image already warped by the network, intensities in [0, 1].
        fixed: ``(1, 1, *S)`` fixed image, intensities in [0, 1].
        config: pyramid, step counts and weights.
    """
    shape = tuple(fixed.shape[2:])
    dim = len(shape)
    velocity = None
    with torch.enable_grad():
        for factor, steps in zip(config.factors, config.steps):
            level = _level_shape(shape, factor)
            grid_factor = max(factor, config.grid_factor)
            grid = _level_shape(shape, grid_factor)
            source, target = _descriptors(warped, fixed, level, config)
            if velocity is None:
                velocity = torch.zeros(1, dim, *grid, device=fixed.device, dtype=fixed.dtype)
            else:
                velocity = resize_field(velocity.detach(), grid)
            velocity.requires_grad_(True)
            optimiser = torch.optim.Adam([velocity], lr=config.lr / grid_factor)
            for _ in range(steps):
                field = integrate_velocity(velocity, config.int_steps)
                mismatch = (warp(source, resize_field(field, level)) - target).pow(2).mean()
                loss = mismatch + config.smooth * gradient_smoothness(field)
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                optimiser.step()
    if velocity is None:
        return torch.zeros(1, dim, *_level_shape(shape, config.grid_factor), device=fixed.device, dtype=fixed.dtype)
    return velocity.detach()


def affine_fields(affine: tuple[Tensor, Tensor] | None, shape: tuple[int, ...], like: Tensor) -> tuple[Tensor, Tensor]:
    """Field and inverse field of an affine map ``(A, t)`` on ``shape`` (zero fields for ``None``, e.g. a
    network without affine stage); ``like`` gives the device and dtype."""
    if affine is None:
        zero = torch.zeros(1, len(shape), *shape, device=like.device, dtype=like.dtype)
        return zero, zero.clone()
    return affine_ddf(*affine, shape), affine_ddf(*invert_affine(*affine), shape)


@torch.no_grad()
def refine_registration(
    moving: Tensor, fixed: Tensor, ddf: Tensor, inverse_ddf: Tensor | None, config: RefineConfig
) -> tuple[Tensor, Tensor | None]:
    """Refine the network's field for one pair.

    Args:
        moving: ``(1, 1, *S)`` moving image, intensities in [0, 1] (the untranslated image: MIND
            compares structure, not intensities).
        fixed: ``(1, 1, *S)`` fixed image, intensities in [0, 1].
        ddf: ``(1, dim, *S)`` the network's displacement (voxels, pull-back).
        inverse_ddf: its inverse, or ``None``.
        config: the refinement settings.

    Returns:
        ``(ddf, inverse_ddf)`` of the refined map, same shapes and convention; ``inverse_ddf`` is
        ``None`` when none was given.
    """
    if moving.shape[0] != 1 or moving.shape != fixed.shape or ddf.shape[2:] != fixed.shape[2:]:
        raise ValueError(
            f"refinement takes one pair: moving {tuple(moving.shape)}, fixed {tuple(fixed.shape)}, ddf {tuple(ddf.shape)}"
        )
    shape = tuple(fixed.shape[2:])
    correction, correction_inverse = affine_fields(optimise_affine(warp(moving, ddf), fixed, config), shape, ddf)
    ddf = compose(ddf, correction)
    velocity = optimise_velocity(warp(moving, ddf), fixed, config)
    refined = compose(ddf, resize_field(integrate_velocity(velocity, config.int_steps), shape))
    if inverse_ddf is None:
        return refined, None
    inverse_ddf = compose(correction_inverse, inverse_ddf)
    inverse = compose(resize_field(integrate_velocity(-velocity, config.int_steps), shape), inverse_ddf)
    return refined, inverse
