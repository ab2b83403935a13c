"""Distillation: the registration network learns the refinement's affine maps and fields.

The joint training drives the network by NMI alone, a weak signal on a CPU-sized budget: the network
alone stays far behind the per-pair refinement. After the translator stages, ``train.distil_steps``
steps fine-tune the registration network on augmented training pairs towards two targets per pair,
both computed on the fly as inference computes them, from the affine stage of a frozen copy of the
network taken when the distillation starts:

* the affine target: the affine stage's map followed by the refinement's affine correction
  (:func:`~innreg.refinement.optimise_affine`, a few coarse Gauss-Newton steps, its levels at the voxel
  sizes they have at inference: :func:`~innreg.pipeline.affine_levels_for_working_grid`);
* the field target: the full refined field (the demons velocity on top of the affine target); left out
  with ``train.distil_target: affine``, where the affine stage alone learns (the U-Net is frozen).

``L = mean |affine_net - affine_target|^2 + mean |u_net - u_refined|^2 (voxels^2, both as fields)
+ w_smooth * |grad u_local|^2 + distil_similarity * L_sim(warp(A, u_net), B)``, the last the joint
training's similarity (``loss.reg_loss``): the squared distances alone pull towards the targets' large
global misalignment, the similarity keeps the image evidence that the joint steps taught the U-Net (a
fresh U-Net distilled alone fell well short of a jointly trained one). The affine term trains the
affine stage directly (most of a refined field on augmented pairs is the global misalignment: RMS 17-22
voxels, measured), so the U-Net only has to learn the residual local field. The translator is frozen:
the registration network adapts to the translation it will see at registration. The frozen start keeps
the targets from following the network: started from the network's current affine stage they drifted
with it in 3D, and the distillation diverged (loss to NaN within 130 steps on the scale3d volumes,
``benchmarks/scale3d.md``). Measured on the whole-head phantom: ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Callable

import torch
from torch import Tensor

from innreg import distributed
from innreg.config import Config, Precision
from innreg.core.affine import affine_ddf
from innreg.core.enums import DistilTarget
from innreg.core.warp import warp
from innreg.loop import LoopState, optimiser_step, run_loop, scheduled_lr, set_lr
from innreg.losses import gradient_smoothness
from innreg.model import INNReg
from innreg.objective import similarity_loss
from innreg.pipeline import affine_start_refinement


@torch.no_grad()
def refined_targets(model: INNReg, moving: Tensor, fixed: Tensor, config: Config) -> tuple[tuple[Tensor, Tensor], Tensor | None]:
    """Targets of a batch ``(N, 1, *S)`` (in [0, 1], one grid, the working resolution), one pair at a time.

    The stages of inference from the affine start, split where the affine part ends
    (:func:`innreg.pipeline.affine_start_refinement`): the affine target and the field target;
    translation-guided when ``refine.translation_weight`` or ``refine.inverse_weight`` is above 0.

    Returns:
        ``((A, t), ddf)``: the affine target, ``(N, dim, dim)`` and ``(N, dim)`` voxels (the
        parametrisation of :func:`~innreg.core.affine.affine_ddf`; for a network without affine stage
        the correction of the identity), and the refined field ``(N, dim, *S)`` (voxels, pull-back;
        ``None`` for ``train.distil_target: affine``, whose targets need no demons).
    """
    model.eval()
    demons = DistilTarget(config.train.distil_target) is DistilTarget.FIELD
    matrices, translations, fields = [], [], []
    for i in range(moving.shape[0]):
        affine, refined = affine_start_refinement(model, moving[i : i + 1], fixed[i : i + 1], config.refine, demons)
        matrices.append(affine.affine[0])
        translations.append(affine.affine[1])
        if refined is not None:
            fields.append(refined.ddf)
    return (torch.cat(matrices), torch.cat(translations)), torch.cat(fields) if fields else None


def distillation_steps(config: Config) -> int:
    """The distillation's length: ``train.distil_steps``, at most twice ``train.steps`` (so a short run
    stays short; the default 2000 steps run after the default 1200 joint steps); 0 for affine targets
    and a network without an affine stage (``model.affine: false``), which has nothing to learn them."""
    t = config.train
    if DistilTarget(t.distil_target) is DistilTarget.AFFINE and not config.model.affine:
        return 0
    return min(t.distil_steps, 2 * t.steps)


def distil_registration(
    model: INNReg,
    batches: Callable[[int], tuple[Tensor, Tensor]],
    config: Config,
    checkpoint: Path | None = None,
    progress: bool = False,
    ctx: distributed.DistContext | None = None,
) -> LoopState:
    """:func:`distillation_steps` Adam steps of the registration network towards the targets of
    :func:`refined_targets` from a frozen copy of ``model`` as it is when the distillation starts, in the
    loop of :mod:`innreg.loop` (resumable from ``checkpoint``, which holds the copy too).

    Under torchrun (``ctx`` of several ranks) every rank distils on its own batches (its ``batches``
    draw its own) with the gradients all-reduced: the model is wrapped in DDP, which first hands every
    rank rank 0's weights (the copy for the targets is taken after), and rank 0 alone writes the
    checkpoint.

    Args:
        model: the trained model; only ``model.registration`` changes (its affine stage alone for
            ``train.distil_target: affine``).
        batches: ``batches(step) -> (moving, fixed)``, ``(N, 1, *S)`` in [0, 1] (the training batches).
        config: ``train`` (steps, lr, clip, ``distil_similarity``), ``loss`` (``w_smooth``, the similarity),
            ``refine`` for the targets.
        checkpoint: the loop's checkpoint file, or ``None``.
        progress: show a progress bar.
        ctx: where this process stands in a multi-process run (``None``: one process).

    Returns:
        The loop's state, one log row per step (averaged over the ranks): ``distil`` (field term),
        ``distil_affine`` (affine term), ``distil_smooth`` and ``distil_sim`` (the similarity, 0 when
        ``train.distil_similarity`` is 0).
    """
    t = config.train
    steps = distillation_steps(config)
    if steps < 1:
        return LoopState()
    ctx = ctx or distributed.DistContext()
    device = next(model.parameters()).device
    # Only the registration network learns, or its affine stage alone for affine targets (and DDP
    # all-reduces only what needs gradients): the translator and a guide are frozen for the distillation.
    affine_only = DistilTarget(t.distil_target) is DistilTarget.AFFINE
    learner = model.registration.affine if affine_only else model.registration
    learning = {id(p) for p in learner.parameters()}
    frozen = [p for p in model.parameters() if p.requires_grad and id(p) not in learning]
    for p in frozen:
        p.requires_grad_(False)
    wrapped = distributed.wrap(model, ctx, device)  # broadcasts rank 0's weights: before the copy
    reference = copy.deepcopy(model).eval().requires_grad_(False)  # the targets' fixed start
    params = [p for p in learner.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=t.lr, betas=tuple(t.betas))
    similarity = similarity_loss(config.loss)
    # train.precision as in the joint steps: the network's forward pass under autocast, the losses in float32.
    precision = Precision(t.precision)
    scaler = distributed.grad_scaler(precision, device)  # a no-op unless fp16

    def step_fn(step: int) -> dict[str, float]:
        set_lr((opt,), scheduled_lr(t.lr, step, steps, t.stage_lr_schedule))
        moving, fixed = batches(10**6 + step)  # batches the joint training did not draw
        (matrix, translation), target = refined_targets(reference, moving, fixed, config)
        model.train()
        with distributed.autocast(precision, device):
            out = wrapped(moving, fixed, with_inverse=False)
        ddf = out.ddf.float()
        distil = ddf.new_zeros(()) if target is None else (ddf - target).pow(2).sum(1).mean()
        affine = distil.new_zeros(())
        if out.affine is not None:
            shape = tuple(moving.shape[2:])
            mine = affine_ddf(*(part.float() for part in out.affine), shape)
            affine = (mine - affine_ddf(matrix, translation, shape)).pow(2).sum(1).mean()
        smooth = gradient_smoothness(out.local_ddf.float())
        total = distil + affine + config.loss.w_smooth * smooth
        sim = distil.new_zeros(())
        if t.distil_similarity > 0:
            sim = similarity(warp(moving, ddf), fixed)
            total = total + t.distil_similarity * sim
        optimiser_step(opt, total, params, t.grad_clip, scaler)
        scaler.update()
        terms = {"distil": distil, "distil_affine": affine, "distil_smooth": smooth, "distil_sim": sim}
        return distributed.mean_over_ranks({name: value.item() for name, value in terms.items()}, ctx, device)

    try:
        parts = {"registration": model.registration, "opt": opt, "reference": reference.registration}
        show = progress and ctx.is_main
        agree = distributed.loop_agreement(ctx, device)
        # Affine targets leave the field term at 0: their bar shows the affine term alone.
        postfix = ("distil_affine",) if affine_only else ("distil", "distil_affine")
        return run_loop(
            "distil", steps, step_fn, parts, checkpoint, t.checkpoint_every, show, writer=ctx.is_main, agree=agree,
            postfix=postfix,
        )
    finally:
        for p in frozen:
            p.requires_grad_(True)
        model.eval()
