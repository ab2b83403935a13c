"""The demons update of the refinement: a per-voxel Gauss-Newton step on a descriptor residual.

:func:`demons_update` is the step itself; :class:`LevelUpdate` computes it for one pyramid level of
:func:`innreg.refinement.optimise_velocity` from the velocity on its grid, at every voxel of the level
or, on levels finer than the grid, at the grid's points only (``RefineConfig.fine_update``).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from innreg.config import RefineConfig
from innreg.core.enums import FineUpdate, PaddingMode
from innreg.core.filters import gaussian_smooth, spatial_gradient
from innreg.core.warp import integrate_velocity, resize_field, sample_on_grid, similarity_weight, warp

# Voxels per slab of :func:`demons_update` on a CPU: its channel-wise passes then run on a few MB at a
# time (in the cache) instead of streaming whole volumes; smaller images, and GPUs, run in one piece.
_SLAB_VOXELS = 1 << 18


def residual_and_gradient(moved: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    """Descriptor residual ``(1, K, *S)`` and the ESM gradient ``(1, K, dim, *S)`` (mean of the warped
    moving and the fixed descriptors' gradients: a better Gauss-Newton step than either alone). Taken as
    the gradient of their mean (differences are linear): one pass over the gradients fewer than adding a
    stored fixed gradient, about 5 % of a 2D demons step."""
    return moved - target, spatial_gradient(moved + target, scale=0.5)


def gauss_newton_step(
    residual: Tensor, gradient: Tensor, config: RefineConfig, weight: Tensor | None, pool_sigma: float = 0.0
) -> Tensor:
    """The update of :func:`demons_update` from the residual ``(1, K, *S)`` and the gradient
    ``(1, K, dim, *S)``, both consumed (squared in place: they are the callers' temporaries, and the
    update took 10 % less time on a 208x208 level, 20 % on a 60x70x60 one); ``weight`` (``(1, 1, *S)``
    or ``None``) scales the residual. With ``pool_sigma > 0`` the step's numerator and denominator are
    smoothed by a Gaussian of that sigma (voxels) before the division: the Gauss-Newton step of a
    neighbourhood rather than of one voxel."""
    if weight is not None:
        residual = residual * weight
    dim = gradient.shape[2]
    # One channel sum per axis: on a CPU 10x faster than one broadcast vecdot on 2D slices, a little in 3D.
    numerator = torch.stack([(residual * gradient[:, :, axis]).sum(1) for axis in range(dim)], dim=1)
    denominator = gradient.square_().sum((1, 2)) / dim + config.residual_damping * residual.square_().sum(1)
    denominator = denominator.unsqueeze(1)
    if pool_sigma > 0:
        numerator, denominator = gaussian_smooth(numerator, pool_sigma), gaussian_smooth(denominator, pool_sigma)
    return numerator * (-config.step_size / (denominator + 1e-6))


def _demons_update_rows(moved: Tensor, target: Tensor, config: RefineConfig, weight: Tensor | None) -> Tensor:
    """:func:`demons_update` of one block of rows (all of them, or a slab with its halo)."""
    return gauss_newton_step(*residual_and_gradient(moved, target), config, weight)


def demons_update(moved: Tensor, target: Tensor, config: RefineConfig, weight: Tensor | None = None) -> Tensor:
    """Per-voxel Gauss-Newton displacement ``(1, dim, *S)`` (voxels) reducing ``|moved - target|^2``.

    ``u = -step_size * sum_k r_k g_k / (sum_k |g_k|^2 / dim + residual_damping * sum_k r_k^2)`` over
    the descriptor channels ``k`` (residual ``r``, ESM gradient ``g``). This is the Gauss-Newton step
    ``-(sum_k g_k g_k^T)^-1 sum_k r_k g_k`` with the normal matrix replaced by its isotropic part
    ``trace / dim`` (MIND's channels look in every direction, so the matrix is close to isotropic, and
    no per-voxel solve is needed), plus Thirion's residual term, which bounds the step where the
    descriptors are flat. ``weight`` (``(1, 1, *S)``, optional) scales the residual: no update where it is 0.

    On a CPU, large images are computed in slabs along the first spatial axis, each with a one-row halo
    for the central differences, so the result is that of one piece (``benchmarks/RESULTS.md`` section 30).
    """
    rows = moved.shape[2]
    slab = max(1, _SLAB_VOXELS // math.prod(moved.shape[3:]))
    if slab >= rows or moved.device.type != "cpu":
        return _demons_update_rows(moved, target, config, weight)
    update = moved.new_empty(moved.shape[0], moved.dim() - 2, *moved.shape[2:])
    for start in range(0, rows, slab):
        stop = min(rows, start + slab)
        low, high = max(0, start - 1), min(rows, stop + 1)
        part = _demons_update_rows(
            moved[:, :, low:high], target[:, :, low:high], config, None if weight is None else weight[:, :, low:high]
        )
        update[:, :, start:stop] = part[:, :, start - low : stop - low]
    return update


class LevelUpdate:
    """The demons update of one pyramid level as a function of the velocity on the grid ``G``.

    Args:
        source: ``(1, K, *L)`` the moving image's features on the level (moving space).
        target: ``(1, K, *L)`` the fixed image's features on the level.
        grid: ``G``, the velocity's grid, as coarse as ``L`` or coarser (same extent, corners aligned).
        config: the step's settings; ``config.fine_update`` picks where a level finer than ``G`` is updated.
        fixed_mask, moving_mask: optional ``(1, 1, *L)`` residual weights (see :func:`similarity_weight`).

    Calling it with a velocity ``(1, dim, *G)`` (voxels of ``G``) returns the update ``(1, dim, *G)``,
    voxels of ``G``. On every voxel (``FineUpdate.VOXELS``, and always where ``G`` is the level): the map
    ``exp(v)`` is resized to ``L``, the features warped, :func:`demons_update` computed and resized back
    to ``G``. At the grid's points (``FineUpdate.GRID`` on a finer level): the features and their
    gradient are read at the mapped points of ``G`` (their gradient read through the map stands in for
    the gradient of the warped features, equal up to the map's Jacobian), for ``1 / grid_factor**dim``
    of the work; the fixed side is read at the grid's points once, and each point's step is pooled over
    its neighbours (``config.grid_pool_sigma``, see :func:`gauss_newton_step`).
    """

    def __init__(
        self,
        source: Tensor,
        target: Tensor,
        grid: tuple[int, ...],
        config: RefineConfig,
        fixed_mask: Tensor | None = None,
        moving_mask: Tensor | None = None,
    ) -> None:
        self.level, self.grid, self.config = tuple(target.shape[2:]), tuple(grid), config
        self.moving_mask = moving_mask
        self.on_grid = self.grid != self.level and config.fine_update == FineUpdate.GRID
        if not self.on_grid:
            self.source, self.target, self.fixed_mask = source, target, fixed_mask
            return
        channels, dim = target.shape[1], len(self.grid)
        at_points = target.new_zeros(1, dim, *self.grid)
        self.target = sample_on_grid(target, at_points)
        # Gradients a channel at a time: no full-resolution copy of all of them at once (on a 176x208x176
        # level the peak memory of this set-up and two steps fell from 2.0 to 1.1 GB, that of every voxel).
        self.target_gradient = torch.stack(
            [sample_on_grid(spatial_gradient(target[:, k : k + 1])[:, 0], at_points) for k in range(channels)], 1
        )
        self.fixed_mask = None if fixed_mask is None else sample_on_grid(fixed_mask, at_points)
        # Features and gradients in one channels-last tensor: one read of a point's neighbours serves all
        # channels (grid_sample on 7 channels of a 120x140x120 volume: 0.24 -> 0.20 s).
        layout = torch.channels_last_3d if dim == 3 else torch.channels_last
        self.source = torch.empty(
            1, channels * (1 + dim), *self.level, device=source.device, dtype=source.dtype, memory_format=layout
        )
        self.source[:, :channels] = source
        for k in range(channels):
            self.source[:, channels + k * dim : channels + (k + 1) * dim] = spatial_gradient(source[:, k : k + 1])[:, 0]
        units = [(g - 1) / max(s - 1, 1) for g, s in zip(self.grid, self.level)]
        self.to_grid_voxels = torch.tensor(units, device=target.device, dtype=target.dtype).view(1, dim, *([1] * dim))

    def __call__(self, velocity: Tensor) -> Tensor:
        field = integrate_velocity(velocity, self.config.int_steps)
        if not self.on_grid:
            field = resize_field(field, self.level)
            weight = similarity_weight(self.fixed_mask, self.moving_mask, field, PaddingMode.ZEROS)
            update = demons_update(warp(self.source, field), self.target, self.config, weight)
            return resize_field(update, self.grid)
        channels, dim = self.target.shape[1], len(self.grid)
        sampled = sample_on_grid(self.source, field)
        residual = sampled[:, :channels] - self.target
        gradient = sampled[:, channels:].unflatten(1, (channels, dim)).add_(self.target_gradient).mul_(0.5)
        weight = similarity_weight(self.fixed_mask, self.moving_mask, field, PaddingMode.ZEROS)
        # The step is in voxels of the level; the velocity's are those of the grid.
        step = gauss_newton_step(residual, gradient, self.config, weight, self.config.grid_pool_sigma)
        return step * self.to_grid_voxels
