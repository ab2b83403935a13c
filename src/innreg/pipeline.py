"""Which stages a trained model runs, and the pair they run on.

:func:`stage_pair` turns normalised images into the :class:`~innreg.chain.StagePair` every stage sees
(the moving image, and its translation when the model has a translator); :func:`registration_chain`
lists the stages for a model and its config:

=================================  ===============================================================
``refine.enabled``, ``refine.init``  stages
=================================  ===============================================================
off                                ``NetworkStage(full)`` (the paper's network alone)
on, ``affine`` (default)           ``NetworkStage(affine)``, ``AffineCorrection``, ``Demons``
on, ``network``                    ``NetworkStage(full)``, ``AffineCorrection``, ``Demons``
=================================  ===============================================================

Inference (:mod:`innreg.inference`) registers through these two functions; the translator stages
(:mod:`innreg.translation_training`) and the distillation (:mod:`innreg.distillation`) through
:func:`affine_start_refinement`, the same stages from the affine start at the working resolution.
"""

from __future__ import annotations

import dataclasses
import enum

import torch
from torch import Tensor

from innreg.chain import StageChain, StagePair
from innreg.config import Config, RefineConfig, RefineInit, RegInput
from innreg.core.affine import rescale_affine
from innreg.core.filters import downsample, resize_linear
from innreg.core.transform import Transform
from innreg.model import INNReg
from innreg.refinement import AffineCorrection, Demons, refinement_stages


class NetworkPart(str, enum.Enum):
    """How much of the registration network a :class:`NetworkStage` runs."""

    AFFINE = "affine"  # the affine stage alone (identity for a network without one)
    FULL = "full"  # affine stage and U-Net


class NetworkStage:
    """The registration network as a stage, run at the model's working resolution.

    The network sees the translated moving image (``model.reg_input: translated``, the pair's channel
    1) or the raw one, both downsampled by ``model.input_factor``; its fields are resized back to the
    pair's grid.

    Args:
        model: the trained :class:`~innreg.model.INNReg`.
        part: :class:`NetworkPart` to run.
        factor: downsampling to the working resolution (``None``: ``model.input_factor``; 1 for pairs
            already there, as in training).
    """

    def __init__(self, model: INNReg, part: NetworkPart = NetworkPart.FULL, factor: int | None = None) -> None:
        self.model, self.part = model, NetworkPart(part)
        self.factor = model.config.input_factor if factor is None else factor
        self.name = "network (affine stage)" if self.part is NetworkPart.AFFINE else "network"

    def __call__(self, pair: StagePair, with_inverse: bool) -> Transform:
        config = self.model.config
        use_translated = RegInput(config.reg_input) is RegInput.TRANSLATED and pair.translated is not None
        source = pair.translated if use_translated else pair.image
        factor, shape = self.factor, tuple(pair.fixed.shape[2:])
        source, fixed = downsample(source, factor), downsample(pair.fixed, factor)
        network = self.model.registration
        if self.part is NetworkPart.AFFINE:
            if network.affine is None:
                return Transform.identity(pair.fixed, with_inverse)
            # The parameters carried over to the pair's grid: no fields made on the working grid.
            affine = rescale_affine(*network.affine(source, fixed), tuple(fixed.shape[2:]), shape)
            return Transform.from_affine(*affine, shape, with_inverse)
        return network(source, fixed, with_inverse=with_inverse).transform.resized(shape)


def stage_pair(
    model: INNReg,
    moving: Tensor,
    fixed: Tensor,
    translate: bool = True,
    fixed_mask: Tensor | None = None,
    moving_mask: Tensor | None = None,
    factor: int | None = None,
    spacing: tuple[float, ...] | None = None,
    inverse: bool = False,
    inverse_factor: int = 1,
) -> StagePair:
    """The pair the stages see: ``moving`` ``(N, 1, *S)`` and, for a model with a translator, its
    translation (computed at the working resolution, ``factor`` as in :class:`NetworkStage`, resized
    back) as channel 1, and for a model with a separate guide the guide's translation as channel 2;
    ``translate=False`` puts the moving image itself in their place (the ``--no-translate`` ablation:
    the identical pipeline). ``spacing``: the grid's voxel size in mm per axis (``None``: unknown).
    ``inverse`` (for ``refine.inverse_weight``): with an invertible translator, also the fixed image
    translated into the moving modality by the inverse of :attr:`~innreg.model.INNReg.refinement_inverse`
    (the guide's when it has one; the fixed image itself when ``translate=False``),
    computed on the fixed image downsampled by ``inverse_factor`` more and resized back."""
    if model.translator is None and model.guide is None:
        return StagePair(moving, fixed, fixed_mask, moving_mask, spacing)
    factor = model.config.input_factor if factor is None else factor
    shape = tuple(moving.shape[2:])
    small = downsample(moving, factor) if translate else None
    channels = [moving]
    for translator in [model.translator] + ([] if model.guide is None else [model.guide]):
        use = translate and translator is not None
        channels.append(resize_linear(translator(small), shape) if use else moving)
    fixed_translated, inverter = None, model.refinement_inverse
    if inverse and inverter is not None:
        fixed_translated = fixed
        if translate:
            fixed_translated = resize_linear(inverter.inverse(downsample(fixed, factor * inverse_factor)), shape)
    return StagePair(torch.cat(channels, dim=1), fixed, fixed_mask, moving_mask, spacing, fixed_translated)


def registration_chain(model: INNReg, config: Config, factor: int | None = None) -> StageChain:
    """The stages ``model`` runs under ``config`` (see the module docstring's table); ``factor`` as in
    :class:`NetworkStage`."""
    refine = config.refine
    if not refine.enabled:
        return StageChain([NetworkStage(model, NetworkPart.FULL, factor)])
    start = NetworkPart.AFFINE if RefineInit(refine.init) is RefineInit.AFFINE else NetworkPart.FULL
    return StageChain([NetworkStage(model, start, factor), *refinement_stages(refine)])


@torch.no_grad()
def affine_start_refinement(
    model: INNReg, moving: Tensor, fixed: Tensor, refine: RefineConfig, demons: bool = True
) -> tuple[Transform, Transform | None]:
    """The refinement of one pair ``(1, 1, *S)`` already at the working resolution (as the training-time
    stages have it) from the network's affine stage, whatever ``refine.init`` says, without inverses.

    The affine correction's levels keep the voxel sizes they have at inference
    (:func:`affine_levels_for_working_grid`); the demons' levels stay as configured.

    Returns:
        ``(affine, refined)``: the affine part (``NetworkStage(affine)`` then ``AffineCorrection``, an
        affine :class:`Transform` whose parameters are known) and the full refined map (``Demons`` after
        it; ``None`` with ``demons=False``, which stops after the affine part).
    """
    refine = affine_levels_for_working_grid(refine, model.config.input_factor)
    pair = stage_pair(model, moving, fixed, factor=1, inverse=refine.inverse_weight > 0, inverse_factor=refine.inverse_factor)
    affine = StageChain([NetworkStage(model, NetworkPart.AFFINE, factor=1), AffineCorrection(refine)])(pair, False)
    return affine, StageChain([Demons(refine)])(pair, False, start=affine) if demons else None


def affine_levels_for_working_grid(refine: RefineConfig, factor: int) -> RefineConfig:
    """``refine`` for a pair already downsampled by ``factor`` (the networks' working grid): the affine
    correction's pyramid levels at the voxel sizes they have at inference on the full grid, each of
    ``refine.affine_factors`` divided by ``factor`` (at least 1; levels that meet on one grid merge, their
    ``affine_steps`` added). ``refine`` itself for ``factor`` 1.

    Why: run on the working grid as configured, the correction's finest level was ``factor`` times coarser
    than at inference; on the 3D CPU default (``factor`` 2, CT -> T1 at 1.5 mm, 6 test volumes) its affine
    maps then reached 0.477 Dice against 0.527 with the levels kept at their inference voxel sizes, and
    those maps are the distillation's affine targets (``benchmarks/RESULTS.md`` section 29; the distilled
    networks and the full pipeline came out the same on two sets). The demons' levels are left alone: kept
    likewise, the refined fields gained 0.001 Dice for twice the time."""
    if factor <= 1:
        return refine
    levels: dict[int, int] = {}
    for level, steps in zip(refine.affine_factors, refine.affine_steps):
        on_grid = max(1, level // factor)
        levels[on_grid] = levels.get(on_grid, 0) + steps
    return dataclasses.replace(refine, affine_factors=tuple(levels), affine_steps=tuple(levels.values()))


def refined_field(model: INNReg, moving: Tensor, fixed: Tensor, config: Config, guided: bool) -> Tensor:
    """The refined pull-back field ``(1, dim, *S)`` of :func:`affine_start_refinement`; ``guided=False``
    leaves the translation guidance (both directions) out."""
    refine = config.refine if guided else dataclasses.replace(config.refine, translation_weight=0.0, inverse_weight=0.0)
    return affine_start_refinement(model, moving, fixed, refine)[1].ddf
