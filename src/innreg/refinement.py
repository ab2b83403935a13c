"""Test-time refinement: a short instance optimisation that starts from the network's output.

The network predicts a field in one pass; its accuracy is limited by how far a CPU-sized training
budget takes it. Refinement then starts from the network's affine stage (``RefineConfig.init``,
default) or its full field and, for this one pair, matches the MIND descriptors of the warped moving
image to those of the fixed image (both lightly smoothed first against noise,
``RefineConfig.mind_presmooth``). MIND is a structural descriptor, so the matching is mono-modal
although the pair is not. Two stages, both coarse to fine and both Gauss-Newton rather than gradient
descent (far fewer, cheaper steps than Adam through autograd; see ``benchmarks/RESULTS.md``):

1. An affine correction (Levenberg-Marquardt on the 6 (2D) or 12 (3D) parameters) on the coarse
   levels ``RefineConfig.affine_factors``: it widens the capture range.
2. Log-domain diffeomorphic demons (Vercauteren et al. 2009) on a stationary velocity field ``v``:
   each step adds the per-voxel Gauss-Newton update of the descriptor residual (with the ESM
   gradient, the mean of the fixed and the warped moving descriptors' gradients) and smooths ``v``
   with a Gaussian, the regulariser. ``v`` lives on a grid at most ``1 / grid_factor`` as fine
   as the image, which keeps the field smooth and fold-free; ``exp(-v)`` is the exact inverse. The
   update is computed in :mod:`innreg.demons`; on a level finer than the grid, on every voxel or at
   the grid's points only (``RefineConfig.fine_update``; 3D: the latter).

Translation guidance (``RefineConfig.translation_weight``): when the caller passes the translated
moving image ``T(moving)`` (the fixed modality), both stages also compare its intensity with the fixed
image's, a mono-modal squared difference, as one extra residual channel weighted against MIND's
channels. MIND alone only sees local structure; the translated intensity also says which tissue lies
where. ``translated=moving`` (``--no-translate``) runs the identical pipeline on the raw image. A model
with a separate guide (``model.guide``) passes the guide's translation here instead of its translator's.

The other direction (``RefineConfig.inverse_weight``, 3 in 2D, 0 in 3D): an invertible translator also
gives the fixed image in the moving modality, ``T^-1(fixed)``; with a weight, the raw moving image is
matched to it as a further channel, mono-modal in the moving modality, whose errors are the inverse's
rather than the forward translation's.

Masks (optional, ``{0, 1}`` or soft, on the fixed grid) weight the descriptor residual voxel by voxel:
the fixed mask times the moving mask warped with the current map, so a region outside either mask (e.g.
a lesion, or background) does not pull on the field; the smoothing carries the field across it.

Both are stages of :mod:`innreg.chain` (:class:`AffineCorrection`, :class:`Demons`, listed by
:func:`refinement_stages`): the composer chains them after the network's map, so the result is
``warp(moving, ddf) = warp(warp(warp(moving, net_ddf), a), r)`` for the affine correction ``a`` and the
velocity's map ``r`` (pull-back, voxels), and the inverse composes the inverses in reverse order.
"""

from __future__ import annotations

import dataclasses
import math

import torch
import torch.nn.functional as F
from torch import Tensor

from innreg.chain import StageChain, StagePair
from innreg.config import RefineConfig
from innreg.core.affine import affine_ddf, rescale_affine
from innreg.core.filters import gaussian_smooth
from innreg.core.transform import Transform
from innreg.demons import LevelUpdate, residual_and_gradient
from innreg.losses import mind_descriptor
from innreg.core.warp import (
    PaddingMode,
    identity_grid,
    integrate_velocity,
    resize_field,
    similarity_weight,
    warp,
)

# A correction of the network's affine stage that changes the area/volume by more than this factor
# is a diverged step, not an alignment; the affine stage then keeps its last good estimate.
_MAX_AFFINE_SCALING = 2.0


def _level_shape(shape: tuple[int, ...], factor: int) -> tuple[int, ...]:
    return tuple(max(2, math.ceil(s / factor)) for s in shape)


def _downsample(image: Tensor, shape: tuple[int, ...]) -> Tensor:
    return image if tuple(image.shape[2:]) == shape else F.interpolate(image, size=shape, mode="area")


def _features(images: Tensor, level: tuple[int, ...], config: RefineConfig) -> Tensor:
    """Matching features ``(1, K, *level)`` of ``images`` ``(1, 1 or 2, *S)`` on a pyramid level: MIND of
    channel 0 smoothed by ``mind_presmooth`` (full-resolution voxels, so ``mind_presmooth * level / S`` of
    the level's), then channel 1 (the translated intensity, when given) scaled by
    ``sqrt(translation_weight)``, so its squared residual weighs ``translation_weight`` against one MIND
    channel's."""
    small = _downsample(images, level)
    sigma = config.mind_presmooth * level[0] / images.shape[2]
    descriptor = mind_descriptor(gaussian_smooth(small[:, :1], sigma), config.mind_radius, config.mind_dilation)
    if images.shape[1] == 1:
        return descriptor
    return torch.cat([descriptor, small[:, 1:] * math.sqrt(config.translation_weight)], dim=1)


def conditional_mean(source: Tensor, target: Tensor, bins: int) -> Tensor:
    """``E[target | source]`` at every voxel of ``source`` ``(1, 1, *S)`` (values clamped to [0, 1]):
    a histogram of ``source`` with ``bins`` bins and linear weights accumulates ``target``; the table is
    read back with the same weights, so every bin read holds voxels."""
    position = source.clamp(0, 1).flatten() * (bins - 1)
    low = position.floor().clamp_max(bins - 2).long()
    upper = position - low
    sums, counts = source.new_zeros(bins), source.new_zeros(bins)
    for index, weight in ((low, 1 - upper), (low + 1, upper)):
        sums.index_add_(0, index, weight * target.flatten())
        counts.index_add_(0, index, weight)
    table = sums / counts.clamp_min(1e-6)
    return (table[low] * (1 - upper) + table[low + 1] * upper).view_as(source)


def _descriptors(
    warped: Tensor, fixed: Tensor, level: tuple[int, ...], config: RefineConfig, fixed_translated: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """Features of the warped moving images and of the fixed image on a pyramid level. ``warped`` is
    ``(1, 1, *S)`` (moving) or ``(1, 2, *S)`` (moving, translated moving); the fixed image stands in
    for both of its channels. With ``fixed_translated`` (``(1, 1, *S)``, the fixed image in the moving
    modality) and ``config.inverse_weight > 0``, the raw moving intensity and ``fixed_translated`` are
    appended, scaled by ``sqrt(inverse_weight)``. With ``config.remap_bins`` the moving intensity channel is
    replaced by :func:`conditional_mean` of the fixed image given it, on the level."""
    source = _features(warped, level, config)
    target = _features(fixed.expand(-1, warped.shape[1], *fixed.shape[2:]), level, config)
    if config.remap_bins > 0 and warped.shape[1] > 1:
        # The intensity channel (the last of _features) as the fixed intensity it predicts, E[fixed | channel].
        predicted = conditional_mean(_downsample(warped[:, 1:], level), _downsample(fixed, level), config.remap_bins)
        source = torch.cat([source[:, :-1], predicted * math.sqrt(config.translation_weight)], dim=1)
    if fixed_translated is None or config.inverse_weight <= 0:
        return source, target
    scale = math.sqrt(config.inverse_weight)
    return (
        torch.cat([source, _downsample(warped[:, :1], level) * scale], dim=1),
        torch.cat([target, _downsample(fixed_translated, level) * scale], dim=1),
    )


def _downsample_mask(mask: Tensor | None, level: tuple[int, ...]) -> Tensor | None:
    return None if mask is None else _downsample(mask, level)


def optimise_affine(
    warped: Tensor,
    fixed: Tensor,
    config: RefineConfig,
    fixed_mask: Tensor | None = None,
    moving_mask: Tensor | None = None,
    fixed_translated: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """Affine ``(A, t)`` (``(1, dim, dim)``, ``(1, dim)`` full-resolution voxels, the parametrisation of
    :func:`~innreg.core.affine.affine_ddf`) aligning ``warped`` to ``fixed`` by MIND on the coarse levels
    ``config.affine_factors``, ``config.affine_steps`` Levenberg-Marquardt steps each.

    It widens the capture range: a global misalignment that the network's affine stage left behind is
    too large for the smooth velocity field to absorb. ``fixed_mask`` and ``moving_mask`` (``(1, 1, *S)``,
    the latter already warped like ``warped``) weight the residual (see the module docstring);
    ``fixed_translated`` as in :func:`optimise_velocity`.
    """
    shape = tuple(fixed.shape[2:])
    dim = len(shape)
    matrix = torch.eye(dim, device=fixed.device, dtype=fixed.dtype)[None]
    translation = torch.zeros(1, dim, device=fixed.device, dtype=fixed.dtype)
    for factor, steps in zip(config.affine_factors, config.affine_steps):
        level = _level_shape(shape, factor)
        source, target = _descriptors(warped, fixed, level, config, fixed_translated)
        level_fixed_mask, level_moving_mask = _downsample_mask(fixed_mask, level), _downsample_mask(moving_mask, level)
        level_matrix, level_translation = rescale_affine(matrix, translation, shape, level)
        centre = torch.tensor([(s - 1) / 2 for s in level], device=fixed.device, dtype=fixed.dtype)
        offsets = identity_grid(level, fixed.device, fixed.dtype) - centre.view(dim, *([1] * dim))
        for _ in range(steps):
            # Border padding: zero descriptors beyond the field of view pull the fit towards a
            # contraction (measured on a shifted synthetic volume: determinant 0.83-0.89 with zero
            # padding, 0.99-1.01 with border padding).
            field = affine_ddf(level_matrix, level_translation, level)
            moved = warp(source, field, padding=PaddingMode.BORDER)
            residual, gradient = residual_and_gradient(moved, target)
            weight = similarity_weight(level_fixed_mask, level_moving_mask, field, PaddingMode.BORDER)
            if weight is not None:
                residual, gradient = residual * weight, gradient * weight.unsqueeze(2)
            # d moved / d A_ij = g_i (p_j - c_j) and d moved / d t_i = g_i, per descriptor channel.
            jacobian = torch.cat([(gradient[0, :, :, None] * offsets).flatten(1, 2), gradient[0]], dim=1).flatten(2)
            normal = torch.einsum("kap,kbp->ab", jacobian, jacobian)
            rhs = torch.einsum("kap,kp->a", jacobian, residual[0].flatten(1))
            # Relative ridge on top of the damping keeps flat (e.g. empty) images solvable.
            diagonal = normal.diagonal()
            ridge = config.affine_damping * diagonal + 1e-6 * diagonal.mean() + 1e-12
            step = -torch.linalg.solve(normal + torch.diag(ridge), rhs)
            new_matrix = level_matrix + step[: dim * dim].view(1, dim, dim)
            det = torch.linalg.det(new_matrix).item()
            if not 1 / _MAX_AFFINE_SCALING < det < _MAX_AFFINE_SCALING:
                break
            level_matrix, level_translation = new_matrix, level_translation + step[dim * dim :].view(1, dim)
        matrix, translation = rescale_affine(level_matrix, level_translation, level, shape)
    return matrix, translation


def optimise_velocity(
    warped: Tensor,
    fixed: Tensor,
    config: RefineConfig,
    fixed_mask: Tensor | None = None,
    moving_mask: Tensor | None = None,
    fixed_translated: Tensor | None = None,
) -> Tensor:
    """Velocity ``(1, dim, *G)`` (voxels of its grid ``G``) aligning ``warped`` to ``fixed``.

    Args:
        warped: ``(1, 1, *S)`` moving image already warped by the network, intensities in [0, 1]
            (``(1, 2, *S)`` with the warped translated image as channel 1, see :func:`_features`).
        fixed: ``(1, 1, *S)`` fixed image, intensities in [0, 1].
        config: pyramid, step counts and weights.
        fixed_mask, moving_mask: optional ``(1, 1, *S)`` residual weights, the moving mask already
            warped like ``warped``.
        fixed_translated: optional ``(1, 1, *S)`` the fixed image in the moving modality, for the
            ``config.inverse_weight`` channel (see :func:`_descriptors`).
    """
    shape = tuple(fixed.shape[2:])
    dim = len(shape)
    final_grid = _level_shape(shape, config.grid_factor)
    velocity = torch.zeros(1, dim, *final_grid, device=fixed.device, dtype=fixed.dtype)
    for factor, steps in zip(config.factors, config.steps):
        level = _level_shape(shape, factor)
        grid = _level_shape(shape, max(factor, config.grid_factor))
        source, target = _descriptors(warped, fixed, level, config, fixed_translated)
        masks = _downsample_mask(fixed_mask, level), _downsample_mask(moving_mask, level)
        update = LevelUpdate(source, target, grid, config, *masks)
        velocity = resize_field(velocity, grid)
        for _ in range(steps):
            # First-order log-domain update (v <- v + u), then the Gaussian regulariser.
            velocity = gaussian_smooth(velocity + update(velocity), config.smooth_sigma)
    return resize_field(velocity, final_grid)


def for_spacing(config: RefineConfig, spacing: tuple[float, ...] | None) -> RefineConfig:
    """``config`` with ``smooth_sigma``, ``mind_dilation`` and ``mind_presmooth`` scaled from
    ``config.reference_spacing`` to voxels of ``spacing`` (mm per axis; their mean: the settings are
    isotropic) when those voxels are coarser, so they keep their size in mm; on finer voxels they keep
    their size in voxels. Unchanged without a spacing or with ``reference_spacing: 0``.

    Why only on coarser voxels: at 1.76 mm (3D) the mm sizes beat the voxel sizes by 0.03 Dice, at
    0.88 mm (2D) the voxel sizes beat the mm sizes by 0.003-0.007 on four sets (``benchmarks/RESULTS.md``)."""
    if spacing is None or config.reference_spacing <= 0:
        return config
    scale = min(1.0, config.reference_spacing / (sum(spacing) / len(spacing)))
    return dataclasses.replace(
        config,
        smooth_sigma=config.smooth_sigma * scale,
        mind_dilation=max(1, round(config.mind_dilation * scale)),
        mind_presmooth=config.mind_presmooth * scale,
    )


def _stage_images(pair: StagePair, config: RefineConfig) -> Tensor:
    """The moving channels the refinement matches: the image, and the translated image as well when
    the pair carries one and ``config.translation_weight > 0`` (:attr:`StagePair.guide`: the guide's
    translation when the model has a separate guide; see :func:`_features`)."""
    guide = pair.guide
    return torch.cat([pair.image, guide], dim=1) if guide is not None and config.translation_weight > 0 else pair.image


class AffineCorrection:
    """Refinement stage 1: the affine map of :func:`optimise_affine` (one pair, ``N = 1``)."""

    name = "affine correction"

    def __init__(self, config: RefineConfig) -> None:
        self.config = config

    @torch.no_grad()
    def __call__(self, pair: StagePair, with_inverse: bool) -> Transform:
        _check_one_pair(pair)
        config = for_spacing(self.config, pair.spacing)
        matrix, translation = optimise_affine(
            _stage_images(pair, config), pair.fixed, config, pair.fixed_mask, pair.moving_mask, pair.fixed_translated
        )
        return Transform.from_affine(matrix, translation, tuple(pair.fixed.shape[2:]), with_inverse)


class Demons:
    """Refinement stage 2: the diffeomorphism ``exp(v)`` of :func:`optimise_velocity` (one pair), with
    its exact inverse ``exp(-v)``."""

    name = "demons"

    def __init__(self, config: RefineConfig) -> None:
        self.config = config

    @torch.no_grad()
    def __call__(self, pair: StagePair, with_inverse: bool) -> Transform:
        _check_one_pair(pair)
        config, shape = for_spacing(self.config, pair.spacing), tuple(pair.fixed.shape[2:])
        velocity = optimise_velocity(
            _stage_images(pair, config), pair.fixed, config, pair.fixed_mask, pair.moving_mask, pair.fixed_translated
        )
        inverse = resize_field(integrate_velocity(-velocity, config.int_steps), shape) if with_inverse else None
        return Transform(resize_field(integrate_velocity(velocity, config.int_steps), shape), inverse)


def _check_one_pair(pair: StagePair) -> None:
    if pair.fixed.shape[0] != 1:
        raise ValueError(f"the refinement takes one pair at a time, got a batch of {pair.fixed.shape[0]}")


def refinement_stages(config: RefineConfig) -> list[AffineCorrection | Demons]:
    """The refinement's stages, in order."""
    return [AffineCorrection(config), Demons(config)]


def refine_registration(
    moving: Tensor,
    fixed: Tensor,
    ddf: Tensor,
    inverse_ddf: Tensor | None,
    config: RefineConfig,
    fixed_mask: Tensor | None = None,
    moving_mask: Tensor | None = None,
    *,
    translated: Tensor | None = None,
    fixed_translated: Tensor | None = None,
    spacing: tuple[float, ...] | None = None,
) -> tuple[Tensor, Tensor | None]:
    """Refine a given field for one pair: the refinement stages chained after ``(ddf, inverse_ddf)``.

    Args:
        moving: ``(1, 1, *S)`` moving image, intensities in [0, 1] (the untranslated image: MIND
            compares structure, not intensities).
        fixed: ``(1, 1, *S)`` fixed image, intensities in [0, 1].
        ddf: ``(1, dim, *S)`` the starting displacement (voxels, pull-back).
        inverse_ddf: its inverse, or ``None``.
        config: the refinement settings.
        fixed_mask: optional ``(1, 1, *S)`` weights on the fixed image (1 = use the voxel).
        moving_mask: optional ``(1, 1, *S)`` weights on the moving image (moving space, on the same grid).
        translated: ``(1, 1, *S)`` the moving image in the fixed modality, on the moving grid; with
            ``config.translation_weight > 0`` its intensity is matched to the fixed image's as well
            (``None``: MIND only).
        fixed_translated: ``(1, 1, *S)`` the fixed image in the moving modality; with
            ``config.inverse_weight > 0`` the moving image's intensity is matched to it as well.
        spacing: voxel size (mm per axis) of the grid, for :func:`for_spacing`; ``None``: voxel units.

    Returns:
        ``(ddf, inverse_ddf)`` of the refined map, same shapes and convention; ``inverse_ddf`` is
        ``None`` when none was given.
    """
    if moving.shape[0] != 1 or moving.shape != fixed.shape or ddf.shape[2:] != fixed.shape[2:]:
        raise ValueError(
            f"refinement takes one pair: moving {tuple(moving.shape)}, fixed {tuple(fixed.shape)}, ddf {tuple(ddf.shape)}"
        )
    if translated is not None and translated.shape != moving.shape:
        raise ValueError(f"translated {tuple(translated.shape)} must match moving {tuple(moving.shape)}")
    images = moving if translated is None else torch.cat([moving, translated], dim=1)
    pair = StagePair(images, fixed, fixed_mask, moving_mask, spacing, fixed_translated)
    with_inverse = inverse_ddf is not None
    refined = StageChain(refinement_stages(config))(pair, with_inverse, start=Transform(ddf, inverse_ddf))
    return refined.ddf, refined.inverse
