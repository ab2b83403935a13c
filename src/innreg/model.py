"""The INNReg model: a modality translator in front of a registration network.

``INNReg(config)`` bundles the translator (invertible by default) and the registration U-Net. The
discriminator is a training-only part and lives in :mod:`innreg.training`.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from innreg.config import Config, ModelConfig, RegInput, TranslatorKind
from innreg.nn import INNTranslator, PatchDiscriminator, RegistrationNet, ResNetTranslator, SliceWise, UNetTranslator
from innreg.data.pairs import check_working_size
from innreg.errors import InnregInputError


@dataclass
class ModelOutput:
    """What one forward pass returns; images ``(N, 1, *S)``, fields ``(N, dim, *S)`` in voxels, pull-back.

    ``local_ddf`` is the U-Net's part of ``ddf`` (without the affine stage); ``inverse_ddf`` is
    ``None`` when not requested; ``affine`` is the affine stage's ``(A, t)`` (``None`` without one).
    """

    translated: Tensor
    ddf: Tensor
    inverse_ddf: Tensor | None
    velocity: Tensor | None
    local_ddf: Tensor
    affine: tuple[Tensor, Tensor] | None = None


def build_critic(config: Config) -> PatchDiscriminator:
    """The PatchGAN critic of the adversarial term (``config.train.disc_*``; it exists only while training)."""
    t = config.train
    return PatchDiscriminator(config.model.dim, 1, t.disc_channels, t.disc_layers, t.disc_blur)


def build_translator(config: ModelConfig, kind: TranslatorKind | str | None = None) -> nn.Module | None:
    """The translator of ``kind`` (default ``config.translator``; ``None`` for ``none``)."""
    kind = TranslatorKind(config.translator if kind is None else kind)
    if kind is TranslatorKind.INN:
        return INNTranslator(
            dim=config.dim,
            in_channels=1,
            n_blocks=config.inn_blocks,
            hidden_channels=config.inn_hidden,
            subnet=config.subnet,
            kernel_size=config.ddc_kernel,
            clamp=config.clamp,
            squeeze=config.squeeze,
            memory_efficient=config.memory_efficient,
            latent_channels=config.inn_latent,
        )
    if kind is TranslatorKind.RESNET:
        return ResNetTranslator(
            dim=config.dim, in_channels=1, channels=config.resnet_channels, n_blocks=config.resnet_blocks
        )
    if kind is TranslatorKind.UNET:
        return UNetTranslator(dim=config.dim, in_channels=1)
    return None


def build_guide(config: ModelConfig) -> nn.Module | None:
    """The refinement's separate guide (``config.guide``; ``None`` for ``none``): with
    ``config.guide_slices`` a 2D translator of that kind run on each slice of the 3D image."""
    if not config.guide_slices:
        return build_translator(config, config.guide)
    guide = build_translator(dataclasses.replace(config, dim=2, guide_slices=False), config.guide)
    return None if guide is None else SliceWise(guide)


class INNReg(nn.Module):
    """Translator + registration network (+ the refinement's guide, when ``config.guide`` names one).

    Args:
        config: the :class:`~innreg.config.ModelConfig` of the run.

    ``forward(moving, fixed)`` takes images ``(N, 1, *S)`` in [0, 1] on one grid and returns a
    :class:`ModelOutput` whose ``ddf`` warps the (original, untranslated) moving image onto ``fixed``.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.translator = build_translator(config)
        self.registration = RegistrationNet(
            dim=config.dim,
            encoder=tuple(config.unet_encoder),
            decoder=tuple(config.unet_decoder),
            diffeomorphic=config.diffeomorphic,
            int_steps=config.int_steps,
            affine=config.affine,
            affine_pool=config.affine_pool,
            affine_hidden=config.affine_hidden,
            affine_slope=config.affine_slope,
            cascades=config.cascades,
        )
        # A separate translator for the refinement's guidance (config.guide), trained by the stages alone;
        # built last, so the other networks start as they would without it.
        self.guide = build_guide(config)

    @property
    def invertible(self) -> bool:
        """Whether the translator has an inverse (the INN; exact unless it carries latent channels)."""
        return hasattr(self.translator, "inverse")

    @property
    def refinement_inverse(self) -> nn.Module | None:
        """The translator whose inverse makes the refinement's ``T^-1(fixed)`` channel
        (``refine.inverse_weight``): the guide when it is invertible (its translation makes the forward
        channel too), else the translator when it is; ``None`` when neither is."""
        for translator in (self.guide, self.translator):
            if translator is not None and hasattr(translator, "inverse"):
                return translator
        return None

    def translate(self, moving: Tensor) -> Tensor:
        """Moving image in the fixed modality (identity when there is no translator)."""
        return moving if self.translator is None else self.translator(moving)

    @property
    def stage_translator(self) -> nn.Module | None:
        """The translator the translator stages train and whose translation guides the refinement: the
        guide when the model has one, else the translator."""
        return self.translator if self.guide is None else self.guide

    def _registration_input(self, moving: Tensor, fixed: Tensor, translate: bool = True) -> tuple[Tensor, Tensor]:
        if moving.shape != fixed.shape:
            raise ValueError(f"moving {tuple(moving.shape)} and fixed {tuple(fixed.shape)} must have the same shape")
        translated = self.translate(moving) if translate else moving
        return translated, translated if RegInput(self.config.reg_input) is RegInput.TRANSLATED else moving

    def forward(self, moving: Tensor, fixed: Tensor, with_inverse: bool = True, translate: bool = True) -> ModelOutput:
        """``translate=False`` is the "no translation" ablation: the raw moving image stands wherever
        the translated one would."""
        translated, source = self._registration_input(moving, fixed, translate)
        reg = self.registration(source, fixed, with_inverse=with_inverse)
        return ModelOutput(translated, reg.ddf, reg.inverse_ddf, reg.velocity, reg.local_ddf, reg.affine)


# Smallest axis the networks accept on their working grid: below it the U-Net's coarsest level and the
# NMI pyramid have nothing left to work with.
MIN_NETWORK_SIZE = 8


def check_network_size(shape: tuple[int, ...], input_factor: int, name: str) -> None:
    """Refuse an image whose working grid (``shape`` downsampled by ``input_factor``) is too small for
    the networks; the :class:`~innreg.errors.InnregInputError` names ``name`` (a file or argument)."""
    check_working_size(shape, input_factor, MIN_NETWORK_SIZE, name)


def resolve_device(device: str | torch.device = "auto", where: str = "--device") -> torch.device:
    """``auto`` picks CUDA when available, else the CPU; ``cpu``/``cuda[:k]`` are taken as given. Any
    other name, or CUDA on a machine without it, is an :class:`~innreg.errors.InnregInputError` naming
    ``where`` the value came from (an option, or a config file's key)."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if not re.fullmatch(r"cpu|cuda(:\d+)?", device):
        raise InnregInputError(f"{where} {device}: expected auto, cpu or cuda[:k]")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise InnregInputError(f"{where} {device}: CUDA is not available on this machine")
    return torch.device(device)
