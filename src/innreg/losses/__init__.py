"""Losses: NMI and its barrier (registration), LSGAN (translation), field smoothness."""

from innreg.losses.adversarial import lsgan_discriminator_loss, lsgan_generator_loss
from innreg.losses.nmi import NMIBarrierLoss, NMILoss, NMINormalization, nmi, nmi_barrier
from innreg.losses.smoothness import gradient_smoothness

__all__ = [
    "NMIBarrierLoss",
    "NMILoss",
    "NMINormalization",
    "gradient_smoothness",
    "lsgan_discriminator_loss",
    "lsgan_generator_loss",
    "nmi",
    "nmi_barrier",
]
