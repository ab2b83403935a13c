"""Distillation: the registration network learns the refinement's affine maps and fields.

The joint training drives the network by NMI alone, a weak signal on a CPU-sized budget: the network
alone stays far behind the per-pair refinement. After the translator stages, ``train.distil_steps``
steps fine-tune the registration network on augmented training pairs towards two targets per pair,
both computed on the fly from the network's current affine stage, as inference computes them:

* the affine target: the affine stage's map followed by the refinement's affine correction
  (:func:`~innreg.refinement.optimise_affine`, a few coarse Gauss-Newton steps);
* the field target: the full refined field (the demons velocity on top of the affine target).

``L = mean |affine_net - affine_target|^2 + mean |u_net - u_refined|^2 (voxels^2, both as fields)
+ w_smooth * |grad u_local|^2``. The affine term trains the affine stage directly (most of a refined
field on augmented pairs is the global misalignment: RMS 17-22 voxels, measured), so the U-Net only has
to learn the residual local field. The translator is frozen: the registration network adapts to the
translation it will see at registration. Measured on the whole-head phantom: ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import torch
from torch import Tensor, nn

from innreg.config import Config
from innreg.core.affine import affine_ddf
from innreg.core.warp import warp
from innreg.losses import gradient_smoothness
from innreg.model import INNReg
from innreg.refinement import affine_fields, optimise_affine, refine_registration


@torch.no_grad()
def refined_targets(model: INNReg, moving: Tensor, fixed: Tensor, config: Config) -> tuple[tuple[Tensor, Tensor], Tensor]:
    """Targets of a batch ``(N, 1, *S)`` (in [0, 1], one grid), one pair at a time.

    Returns:
        ``((A, t), ddf)``: the affine target, ``(N, dim, dim)`` and ``(N, dim)`` voxels (the
        parametrisation of :func:`~innreg.core.affine.affine_ddf`; the identity for a network without
        affine stage), and the refined field ``(N, dim, *S)`` (voxels, pull-back), as inference computes
        it from the affine start (translation-guided when ``refine.translation_weight > 0``).
    """
    model.eval()
    shape, dim = tuple(moving.shape[2:]), moving.dim() - 2
    # The demons stage alone, once the affine target is known (optimise_affine without levels is the identity).
    demons_only = dataclasses.replace(config.refine, affine_factors=(), affine_steps=())
    matrices, translations, fields = [], [], []
    for i in range(moving.shape[0]):
        m, f = moving[i : i + 1], fixed[i : i + 1]
        translated, affine = model.affine_alignment(m, f)
        if affine is None:
            affine = (torch.eye(dim, dtype=m.dtype, device=m.device)[None], m.new_zeros(1, dim))
        guide = translated if model.translator is not None and config.refine.translation_weight > 0 else None
        source = m if guide is None else torch.cat([m, guide], dim=1)
        start, _ = affine_fields(affine, shape, m)
        correction = optimise_affine(warp(source, start), f, config.refine)
        # x -> net(correction(x)): A = A_net A_c, t = A_net t_c + t_net (maps about the grid centre).
        matrix = affine[0] @ correction[0]
        translation = torch.einsum("nij,nj->ni", affine[0], correction[1]) + affine[1]
        target = affine_ddf(matrix, translation, shape)
        fields.append(refine_registration(m, f, target, None, demons_only, translated=guide)[0])
        matrices.append(matrix)
        translations.append(translation)
    return (torch.cat(matrices), torch.cat(translations)), torch.cat(fields)


def distil_registration(
    model: INNReg, batches: Callable[[int], tuple[Tensor, Tensor]], config: Config
) -> list[dict[str, float]]:
    """``config.train.distil_steps`` (at most ``train.steps``, as the translator stages) Adam steps of
    the registration network towards the targets of :func:`refined_targets`.

    Args:
        model: the trained model; only ``model.registration`` changes.
        batches: ``batches(step) -> (moving, fixed)``, ``(N, 1, *S)`` in [0, 1] (the training batches).
        config: ``train`` (steps, lr, clip) and ``loss.w_smooth``, ``refine`` for the targets.

    Returns:
        One row per step: ``distil`` (field term), ``distil_affine`` (affine term) and ``distil_smooth``.
    """
    t = config.train
    translator = model.translator
    if translator is not None:
        translator.requires_grad_(False)
    params = [p for p in model.registration.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=t.lr, betas=tuple(t.betas))
    history = []
    for step in range(min(t.distil_steps, t.steps)):
        moving, fixed = batches(10**6 + step)  # batches the joint training did not draw
        (matrix, translation), target = refined_targets(model, moving, fixed, config)
        model.train()
        out = model(moving, fixed, with_inverse=False)
        distil = (out.ddf - target).pow(2).sum(1).mean()
        affine = distil.new_zeros(())
        if out.affine is not None:
            shape = tuple(moving.shape[2:])
            affine = (affine_ddf(*out.affine, shape) - affine_ddf(matrix, translation, shape)).pow(2).sum(1).mean()
        smooth = gradient_smoothness(out.local_ddf)
        total = distil + affine + config.loss.w_smooth * smooth
        opt.zero_grad(set_to_none=True)
        total.backward()
        nn.utils.clip_grad_norm_(params, t.grad_clip)
        opt.step()
        history.append({"distil": distil.item(), "distil_affine": affine.item(), "distil_smooth": smooth.item()})
    if translator is not None:
        translator.requires_grad_(True)
    model.eval()
    return history
