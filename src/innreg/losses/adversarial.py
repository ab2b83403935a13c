"""Least-squares GAN (LSGAN, Mao et al. 2017) losses on discriminator logits of any shape.

Real target 1, fake target 0; patch discriminators simply return a logit map, every element of which
counts equally.
"""

from __future__ import annotations

from torch import Tensor


def lsgan_discriminator_loss(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """``0.5 * (mean((real - 1)^2) + mean(fake^2))``; pass ``fake_logits`` computed from detached fakes."""
    return 0.5 * (((real_logits - 1) ** 2).mean() + (fake_logits**2).mean())


def lsgan_generator_loss(fake_logits: Tensor) -> Tensor:
    """``mean((fake - 1)^2)``: the generator wants its outputs scored as real."""
    return ((fake_logits - 1) ** 2).mean()
