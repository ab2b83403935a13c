"""Distillation: the registration network learns the refinement's fields.

The joint training drives the network by NMI alone, a weak signal on a CPU-sized budget: the network
alone stays far behind the per-pair refinement. After the translator stages, ``train.distil_steps``
steps fine-tune the registration network on augmented training pairs towards the refined field of
each pair, computed on the fly (network's affine stage, then the translation-guided refinement):
``L = mean |u_net - u_refined|^2 (voxels) + w_smooth * |grad u_local|^2``. The translator and the
affine stage are frozen, so the translation and the start the refinement relies on do not move.
The aim: the network alone closer to the refined result, and a refinement from the full field
(``refine.init: network``) that starts nearer to the answer. Measured on the whole-head phantom
(``benchmarks/RESULTS.md``): 150 steps did not get there, so it is off by default.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch
from torch import Tensor, nn

from innreg.config import Config
from innreg.loop import LoopState, run_loop
from innreg.losses import gradient_smoothness
from innreg.model import INNReg
from innreg.pipeline import refined_field


@torch.no_grad()
def refined_targets(model: INNReg, moving: Tensor, fixed: Tensor, config: Config) -> Tensor:
    """Refined fields ``(N, dim, *S)`` of a batch, one pair at a time, as inference computes them
    from the affine start (translation-guided when ``refine.translation_weight > 0``)."""
    model.eval()
    targets = [
        refined_field(model, moving[i : i + 1], fixed[i : i + 1], config, guided=True)
        for i in range(moving.shape[0])
    ]
    return torch.cat(targets)


def distil_registration(
    model: INNReg,
    batches: Callable[[int], tuple[Tensor, Tensor]],
    config: Config,
    checkpoint: Path | None = None,
    progress: bool = False,
) -> LoopState:
    """``config.train.distil_steps`` Adam steps of the registration network towards refined fields, in
    the loop of :mod:`innreg.loop` (resumable from ``checkpoint``).

    Args:
        model: the trained model; only ``model.registration`` changes.
        batches: ``batches(step) -> (moving, fixed)``, ``(N, 1, *S)`` in [0, 1] (the training batches).
        config: ``train`` (steps, lr, clip) and ``loss.w_smooth``, ``refine`` for the targets.
        checkpoint: the loop's checkpoint file, or ``None``.
        progress: show a progress bar.

    Returns:
        The loop's state: one log row per step with the distillation and smoothness terms.
    """
    t = config.train
    if t.distil_steps < 1:
        return LoopState()
    # Frozen: the translator, and the affine stage the targets start from (targets computed from a
    # moving affine stage drift with it and the fine-tuning chases its own tail).
    frozen = [m for m in (model.translator, model.registration.affine) if m is not None]
    for module in frozen:
        module.requires_grad_(False)
    params = [p for p in model.registration.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=t.lr, betas=tuple(t.betas))

    def step_fn(step: int) -> dict[str, float]:
        moving, fixed = batches(10**6 + step)  # batches the joint training did not draw
        target = refined_targets(model, moving, fixed, config)
        model.train()
        out = model(moving, fixed, with_inverse=False)
        distil = (out.ddf - target).pow(2).sum(1).mean()
        smooth = gradient_smoothness(out.local_ddf)
        total = distil + config.loss.w_smooth * smooth
        opt.zero_grad(set_to_none=True)
        total.backward()
        nn.utils.clip_grad_norm_(params, t.grad_clip)
        opt.step()
        return {"distil": distil.item(), "distil_smooth": smooth.item()}

    try:
        parts = {"registration": model.registration, "opt": opt}
        return run_loop("distil", t.distil_steps, step_fn, parts, checkpoint, t.checkpoint_every, progress)
    finally:
        for module in frozen:
            module.requires_grad_(True)
        model.eval()
