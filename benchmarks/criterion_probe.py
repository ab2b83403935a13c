"""Other ways for the refinement to use the translation, against the shipped one (run by hand).

Usage:
    python benchmarks/criterion_probe.py MODEL.pt TEST.csv N_PAIRS VARIANT[,VARIANT...] [--no-translate] [--keep DIR]

``--keep DIR`` keeps each variant's evaluation in ``DIR/VARIANT`` (for ``innreg compare``).

The refinement (``innreg.refinement``) matches MIND of the raw moving image and, as one extra channel,
the translated intensity (weight ``refine.translation_weight`` against one MIND channel). Each variant
replaces those features, for the affine correction and the demons alike, and the first ``N_PAIRS``
pairs of ``TEST.csv`` are scored by ``innreg.evaluation.evaluate`` (the code of ``innreg evaluate``):

* ``default``: the shipped features.
* ``mind:BETA:SIGMA``: fusion, ``BETA`` times MIND of the translated image (smoothed by a Gaussian of
  ``SIGMA`` voxels first, 0 = not smoothed: the translation's 2x2 texture) beside the shipped features.
* ``lncc:SIGMA:WEIGHT``: the translated intensity locally normalised (minus its Gaussian mean, over its
  Gaussian s.d., both of ``SIGMA`` voxels), so its squared difference is a local NCC, with ``WEIGHT``
  against one MIND channel, beside the shipped features.
* ``coarse:BETA:FACTOR``: ``mind:BETA:0`` on the pyramid levels downsampled by ``FACTOR`` or more only
  (the translation's layout of tissues, not its fine texture), the shipped features on the finer ones.
* ``highpass:SIGMA``: the shipped intensity channel minus its Gaussian mean of ``SIGMA`` full-resolution
  voxels (on both sides): the two images' smooth bias fields, which MIND ignores, leave the channel.
* ``smooth:SIGMA``: the shipped intensity channel smoothed by a Gaussian of ``SIGMA`` voxels.
* ``inverse:WEIGHT``: the INN's other direction, beside the shipped features: ``refine.inverse_weight:
  WEIGHT``, the raw moving intensity against the fixed image translated into the moving modality by the
  translator's inverse (``T^-1(fixed)``, computed once per pair, at the model's ``refine.inverse_factor``).
  ``inverse:WEIGHT:FACTOR``: the same on the levels downsampled by ``FACTOR`` or more only.
* ``remap:BINS[:INVERSE_WEIGHT]``: ``refine.remap_bins: BINS``, the intensity channel replaced by the fixed
  intensity it predicts, ``E[fixed | channel]``, a per-pair lookup table from the joint histogram of the
  channel and the fixed image as the stage finds them aligned, on each pyramid level: it corrects a
  translation's wrong grey values pair by pair and, with ``--no-translate``, turns the raw moving
  intensity into the classic intensity-remapping criterion (the strongest ablation to beat).
  ``INVERSE_WEIGHT`` overrides ``refine.inverse_weight`` (e.g. 0 for that ablation). ``remap2:BINS``: the
  same, and the inverse channel's ``T^-1(fixed)`` replaced by the moving intensity it predicts,
  ``E[moving | T^-1(fixed)]``, likewise.

The fixed image stands in for the translated channel on the fixed side, as in the shipped refinement;
``--no-translate`` puts the raw moving image in its place (and, for ``inverse``, the fixed image in place of
``T^-1(fixed)``). ``benchmarks/RESULTS.md`` sections 13 and 18.
"""

from __future__ import annotations

import math
import sys
import tempfile
from pathlib import Path
from typing import Callable

import torch
from torch import Tensor

import innreg.refinement as refinement
from innreg.config import RefineConfig
from innreg.core.filters import gaussian_smooth
from innreg.evaluation import evaluate
from innreg.losses import mind_descriptor

Features = Callable[[Tensor, tuple[int, ...], RefineConfig], Tensor]
SHIPPED: Features = refinement._features


def local_normalised(image: Tensor, sigma: float) -> Tensor:
    """``(x - G * x) / sqrt(G * (x - G * x)^2)`` for a Gaussian ``G`` of ``sigma`` voxels (s.d. floored at 0.01)."""
    centred = image - gaussian_smooth(image, sigma)
    return centred / gaussian_smooth(centred * centred, sigma).clamp_min(1e-4).sqrt()


def variant_features(variant: str) -> Features:
    """The feature function named by ``variant`` (see the module docstring)."""
    kind, *numbers = variant.split(":")
    args = [float(n) for n in numbers]
    if kind == "default":
        return SHIPPED

    def features(images: Tensor, level: tuple[int, ...], config: RefineConfig) -> Tensor:
        if images.shape[1] == 1:
            return SHIPPED(images, level, config)
        small = refinement._downsample(images, level)
        translated = small[:, 1:2]
        if kind in ("smooth", "highpass"):
            mind = SHIPPED(images[:, :1], level, config)
            if kind == "smooth":
                channel = gaussian_smooth(translated, args[0])
            else:
                channel = translated - gaussian_smooth(translated, args[0] * level[0] / images.shape[2])
            return torch.cat([mind, channel * math.sqrt(config.translation_weight)], 1)
        shipped = SHIPPED(images, level, config)
        if kind == "coarse":
            beta, factor = args
            if images.shape[2] / level[0] < factor - 0.5:
                return shipped
            extra = beta * mind_descriptor(translated, config.mind_radius, config.mind_dilation)
        elif kind == "mind":
            beta, sigma = args
            extra = beta * mind_descriptor(gaussian_smooth(translated, sigma), config.mind_radius, config.mind_dilation)
        elif kind == "lncc":
            sigma, weight = args
            extra = local_normalised(translated, sigma) * math.sqrt(weight)
        else:
            raise ValueError(f"unknown variant {variant!r}")
        return torch.cat([shipped, extra], 1)

    return features


SHIPPED_DESCRIPTORS = refinement._descriptors


def inverse_on_coarse_levels(min_factor: float) -> Callable:
    """``refinement._descriptors`` with the ``refine.inverse_weight`` channel on the levels downsampled
    by ``min_factor`` or more only."""

    def descriptors(warped: Tensor, fixed: Tensor, level: tuple[int, ...], config: RefineConfig, fixed_translated=None):
        coarse = fixed.shape[2] / level[0] > min_factor - 0.5
        return SHIPPED_DESCRIPTORS(warped, fixed, level, config, fixed_translated if coarse else None)

    return descriptors


def inverse_remapped(bins: int) -> Callable:
    """``refinement._descriptors`` with the inverse channel's ``T^-1(fixed)`` replaced by the moving
    intensity it predicts, ``E[moving | T^-1(fixed)]`` (see ``remap2`` in the module docstring)."""

    def descriptors(warped: Tensor, fixed: Tensor, level: tuple[int, ...], config: RefineConfig, fixed_translated=None):
        source, target = SHIPPED_DESCRIPTORS(warped, fixed, level, config, fixed_translated)
        if fixed_translated is None or config.inverse_weight <= 0:
            return source, target
        small = refinement._downsample(warped[:, :1], level)
        inverse = refinement.conditional_mean(refinement._downsample(fixed_translated, level), small, bins)
        return source, torch.cat([target[:, :-1], inverse * math.sqrt(config.inverse_weight)], 1)

    return descriptors


def main(argv: list[str]) -> None:
    import refine_sweep  # this folder (the script's own) is on sys.path when run as a script

    keep = None
    if "--keep" in argv:
        at = argv.index("--keep")
        keep, argv = Path(argv[at + 1]), argv[:at] + argv[at + 2 :]
    model, records, no_translate, variants = refine_sweep.model_and_pairs(argv, threads=1)
    shipped = model.config
    for variant in variants.split(","):
        if variant.startswith("inverse:"):
            weight, *min_factor = [float(n) for n in variant.split(":")[1:]]
            model.config = shipped.updated(refine={"inverse_weight": weight})
            if min_factor:
                refinement._descriptors = inverse_on_coarse_levels(min_factor[0])
        elif variant.startswith(("remap:", "remap2:")):
            bins, *inverse_weight = variant.split(":")[1:]
            overrides = {"remap_bins": int(bins)} | ({"inverse_weight": float(inverse_weight[0])} if inverse_weight else {})
            model.config = shipped.updated(refine=overrides)
            if variant.startswith("remap2:"):
                refinement._descriptors = inverse_remapped(int(bins))
        else:
            refinement._features = variant_features(variant)
        try:
            with tempfile.TemporaryDirectory() as scratch:
                out = scratch if keep is None else keep / f"{'no-translate-' if no_translate else ''}{variant}"
                s = evaluate(model, records, out, overview_pairs=0, progress=False)
        finally:
            refinement._features, refinement._descriptors, model.config = SHIPPED, SHIPPED_DESCRIPTORS, shipped
        print(
            f"{'no-translate ' if no_translate else ''}{variant}: Dice {s.dice_mean:.4f}, HD95 {s.hd95_mean:.2f} mm, "
            f"Jac<=0 {100 * s.neg_jacobian_fraction:.3f}%, {1000 * s.seconds_per_pair:.0f} ms/pair",
            flush=True,
        )


if __name__ == "__main__":
    main(sys.argv[1:])
