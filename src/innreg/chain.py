"""Registration as a chain of stages: one contract, one composer.

A **stage** is any callable ``stage(pair, with_inverse) -> Transform``: given a pair whose moving image
is already warped by everything before it, it returns the map that aligns that pair further (and its
inverse when asked). :class:`StageChain` runs stages in order and composes their maps with
:meth:`~innreg.core.transform.Transform.then`, the one composition of the package; the moving image is
warped once per stage from the original, never warp on warp.

The stages of innreg: the network's affine stage and the full network (:mod:`innreg.pipeline`), the
refinement's affine correction and demons (:mod:`innreg.refinement`). A new stage is a class with that
``__call__``; :func:`innreg.pipeline.registration_chain` decides which stages a model runs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

from torch import Tensor

from innreg.core.transform import Transform
from innreg.core.warp import warp


@dataclass(frozen=True)
class StagePair:
    """The images a stage sees, all on the fixed grid.

    Attributes:
        moving: ``(N, C, *S)`` channel 0 the moving image (intensities in [0, 1]); channel 1, when
            present, the moving image translated into the fixed modality (or the moving image again in
            the ``--no-translate`` ablation); channel 2, when present, its translation by the model's
            separate guide (``model.guide``), which the refinement matches instead of channel 1. Every
            channel moves with the map.
        fixed: ``(N, 1, *S)`` the fixed image in [0, 1].
        fixed_mask: optional ``(N, 1, *S)`` voxel weights on the fixed image (1 = use the voxel).
        moving_mask: optional ``(N, 1, *S)`` voxel weights on the moving image, warped with it.
        spacing: voxel size of the grid in mm per axis, or ``None`` (unknown: stages work in voxels).
        fixed_translated: optional ``(N, 1, *S)`` the fixed image in the moving modality (the translator's
            inverse; the fixed image itself in the ``--no-translate`` ablation), which the refinement
            matches the raw moving image to (``refine.inverse_weight``). It stays put, like ``fixed``.
    """

    moving: Tensor
    fixed: Tensor
    fixed_mask: Tensor | None = None
    moving_mask: Tensor | None = None
    spacing: tuple[float, ...] | None = None
    fixed_translated: Tensor | None = None

    def __post_init__(self) -> None:
        m, f = self.moving, self.fixed
        if m.dim() != f.dim() or m.shape[0] != f.shape[0] or m.shape[2:] != f.shape[2:] or f.shape[1] != 1:
            raise ValueError(f"moving (N, C, *S) and fixed (N, 1, *S) must share N and S, got {tuple(m.shape)} and {tuple(f.shape)}")
        if m.shape[1] not in (1, 2, 3):
            raise ValueError(f"moving has channels (image[, translated image[, guide's translation]]), got {m.shape[1]}")
        if self.spacing is not None and (len(self.spacing) != f.dim() - 2 or min(self.spacing) <= 0):
            raise ValueError(f"spacing {self.spacing} must give a positive size for each of the {f.dim() - 2} axes")
        for name in ("fixed_mask", "moving_mask", "fixed_translated"):
            mask = getattr(self, name)
            if mask is not None and (mask.shape[0] != f.shape[0] or mask.shape[1] != 1 or mask.shape[2:] != f.shape[2:]):
                raise ValueError(f"{name} {tuple(mask.shape)} does not match fixed {tuple(f.shape)}")

    @property
    def image(self) -> Tensor:
        """``(N, 1, *S)`` the moving image itself."""
        return self.moving[:, :1]

    @property
    def translated(self) -> Tensor | None:
        """``(N, 1, *S)`` the translated moving image, ``None`` when the pair carries none."""
        return self.moving[:, 1:2] if self.moving.shape[1] > 1 else None

    @property
    def guide(self) -> Tensor | None:
        """``(N, 1, *S)`` the translation the refinement matches: the guide's when the pair carries one,
        else :attr:`translated`."""
        return self.moving[:, -1:] if self.moving.shape[1] > 1 else None

    def warped(self, ddf: Tensor) -> "StagePair":
        """The pair with every moving channel and the moving mask pulled through ``ddf``."""
        mask = None if self.moving_mask is None else warp(self.moving_mask, ddf)
        return replace(self, moving=warp(self.moving, ddf), moving_mask=mask)


class Stage(Protocol):
    """One registration stage: the map ``Transform`` (fixed grid, voxels, pull-back) that aligns the
    already warped ``pair`` further; ``inverse`` is set when ``with_inverse``."""

    def __call__(self, pair: StagePair, with_inverse: bool) -> Transform: ...


def stage_name(stage: Stage) -> str:
    """What a stage is, for progress messages: its ``name`` attribute, else its class name."""
    return getattr(stage, "name", type(stage).__name__)


class StageChain:
    """Run stages in order and compose their maps.

    Args:
        stages: the stages, first to last.

    ``chain(pair, with_inverse=True, start=None, on_stage=None)`` returns the composed :class:`Transform`;
    ``start`` (a map found before, e.g. outside the chain) is applied first; ``on_stage(stage)``, when
    given, is called before each stage runs (progress reports).
    """

    def __init__(self, stages: Sequence[Stage]) -> None:
        self.stages = list(stages)

    def __call__(
        self,
        pair: StagePair,
        with_inverse: bool = True,
        start: Transform | None = None,
        on_stage: Callable[[Stage], None] | None = None,
    ) -> Transform:
        total = start
        for stage in self.stages:
            if on_stage is not None:
                on_stage(stage)
            step = stage(pair if total is None else pair.warped(total.ddf), with_inverse)
            total = step if total is None else total.then(step)
        return Transform.identity(pair.fixed, with_inverse) if total is None else total

    def __repr__(self) -> str:
        return f"StageChain({', '.join(type(s).__name__ for s in self.stages)})"
