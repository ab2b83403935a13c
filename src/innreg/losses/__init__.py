"""Losses: NMI and its barrier (registration), LSGAN (translation), field smoothness, MIND (refinement)."""

from innreg.losses.adversarial import lsgan_discriminator_loss, lsgan_generator_loss
from innreg.losses.mind import mind_descriptor, mind_offsets
from innreg.losses.nmi import NMIBarrierLoss, NMILoss, NMINormalization, multiscale_nmi, nmi, nmi_barrier
from innreg.losses.smoothness import gradient_smoothness

__all__ = [
    "NMIBarrierLoss",
    "NMILoss",
    "NMINormalization",
    "gradient_smoothness",
    "lsgan_discriminator_loss",
    "lsgan_generator_loss",
    "mind_descriptor",
    "mind_offsets",
    "multiscale_nmi",
    "nmi",
    "nmi_barrier",
]
