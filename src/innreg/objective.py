"""INNReg's training objective: a model, a pair and the loss config in; named loss terms out.

``L = w_adv * L_adv + w_l1 * L_l1 + lambda_reg * (w_sim * L_sim + w_smooth * L_smooth)``

with ``L_l1 = |warp(T(A)) - B| (+ |warp(A) - T^-1(B)|`` for the invertible translator), ``L_sim`` the
public :class:`~innreg.losses.NMIBarrierLoss` (``-log(NMI(warp(A), B) - tau)`` over an NMI pyramid) or
:class:`~innreg.losses.NMILoss` (``1 - NMI``, the "w/o barrier" ablation), ``L_smooth`` the mean
squared spatial gradient of the U-Net's displacement and ``L_adv`` the LSGAN generator term.
"""

from __future__ import annotations

import contextlib
from typing import Callable

from torch import Tensor, nn

from innreg.config import LossConfig, RegLossKind
from innreg.core.warp import similarity_weight, warp
from innreg.losses import NMIBarrierLoss, NMILoss, gradient_smoothness, lsgan_generator_loss
from innreg.model import INNReg


def similarity_loss(loss: LossConfig) -> NMIBarrierLoss | NMILoss:
    """The registration similarity named by ``loss.reg_loss``, with the config's bins and pyramid."""
    if RegLossKind(loss.reg_loss) is RegLossKind.BARRIER:
        return NMIBarrierLoss(tau=loss.tau, eps=loss.barrier_eps, bins=loss.nmi_bins, scales=loss.nmi_scales)
    return NMILoss(bins=loss.nmi_bins, scales=loss.nmi_scales)


def generator_losses(
    model: INNReg | nn.Module,
    discriminator: nn.Module | None,
    moving: Tensor,
    fixed: Tensor,
    loss: LossConfig,
    fixed_mask: Tensor | None = None,
    moving_mask: Tensor | None = None,
    amp: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
) -> dict[str, Tensor]:
    """All loss terms of the translator/registration update, and their weighted ``total``.

    Args:
        model: the :class:`INNReg`, or its DDP wrapper (whose forward all-reduces the gradients).
        discriminator: the PatchGAN critic, or ``None`` (no adversarial term).
        moving, fixed: ``(N, 1, *S)`` images in [0, 1] on one grid.
        loss: the ``loss`` config section (weights, NMI settings).
        fixed_mask, moving_mask: optional ``(N, 1, *S)`` masks (moving space for the moving one): the
            NMI counts only voxels inside the fixed mask and the moving mask warped with the current field.
        amp: autocast context for the networks' forward passes; the losses are computed in float32.

    Returns:
        ``sim``, ``smooth``, ``l1`` and ``adv`` (when they apply), ``total`` (differentiable) and ``nmi``
        (the batch mean NMI, detached, for the log).
    """
    core: INNReg = getattr(model, "module", model)
    with amp():
        out = model(moving, fixed, with_inverse=False)
        back = core.translator.inverse(fixed) if core.translator is not None and core.invertible else None
        critic = discriminator(out.translated) if core.translator is not None and discriminator is not None else None
    ddf = out.ddf.float()
    warped = warp(moving, ddf)
    # The warped mask is a constant weight: the network must not gain NMI by moving the mask itself.
    weight = similarity_weight(fixed_mask, moving_mask, ddf.detach())
    similarity = similarity_loss(loss)
    nmi_values = similarity.nmi_values(warped, fixed, weight)
    terms: dict[str, Tensor] = {
        "sim": similarity.from_values(nmi_values),
        "smooth": gradient_smoothness(out.local_ddf.float()),
    }
    total = loss.lambda_reg * (loss.w_sim * terms["sim"] + loss.w_smooth * terms["smooth"])
    if core.translator is not None:
        l1 = (warp(out.translated.float(), ddf) - fixed).abs().mean()
        if back is not None:
            l1 = l1 + (warped - back.float()).abs().mean()
        terms["l1"] = l1
        total = total + loss.w_l1 * l1
        if critic is not None:
            terms["adv"] = lsgan_generator_loss(critic.float())
            total = total + loss.w_adv * terms["adv"]
    terms["total"] = total
    terms["nmi"] = nmi_values.mean().detach()
    return terms
