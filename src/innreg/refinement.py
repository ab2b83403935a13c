"""Test-time refinement: a short instance optimisation that starts from the network's output.

The network predicts a field in one pass; its accuracy is limited by how far a CPU-sized training
budget takes it. Refinement then starts from the network's affine stage (``RefineConfig.init``,
default) or its full field and optimises, for this one pair, a stationary velocity field ``v`` on a
coarse-to-fine pyramid (``RefineConfig.factors``) so that the MIND descriptors of the network-warped
moving image match those of the fixed image, with diffusion regularisation on ``exp(v)``. MIND is a
structural descriptor, so the loss is mono-modal although the pair is not; the same pyramid with NMI
reached a lower Dice (measured in ``benchmarks/RESULTS.md``). The velocity lives on a grid at most
``1 / grid_factor`` as fine as the image, which keeps the field smooth and fold-free.

The result is the exact composition of the network's map and the refinement (pull-back convention of
:mod:`innreg.nn.warp`, voxel units): ``warp(moving, ddf) = warp(warp(moving, net_ddf), r)``, and the
inverse composes the inverses in reverse order.
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
            with torch.no_grad():
                target = mind_descriptor(_downsample(fixed, level), config.mind_radius, config.mind_dilation)
                source = mind_descriptor(_downsample(warped, level), config.mind_radius, config.mind_dilation)
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


def affine_start(affine: tuple[Tensor, Tensor] | None, shape: tuple[int, ...], like: Tensor) -> tuple[Tensor, Tensor]:
    """Field and inverse of the network's affine stage ``(A, t)`` (zero fields when there is none)."""
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
    velocity = optimise_velocity(warp(moving, ddf), fixed, config)
    refined = compose(ddf, resize_field(integrate_velocity(velocity, config.int_steps), shape))
    if inverse_ddf is None:
        return refined, None
    inverse = compose(resize_field(integrate_velocity(-velocity, config.int_steps), shape), inverse_ddf)
    return refined, inverse
