"""Every enum of innreg, at the bottom of the import graph.

Configuration, networks, losses and the field maths all name their choices here, so a lower layer
never imports a higher one for an enum. They are ``str`` enums: YAML and the CLI give plain strings.
"""

from __future__ import annotations

from enum import Enum


class InterpMode(str, Enum):
    """Interpolation for :func:`innreg.core.warp.warp`: ``bilinear`` (trilinear in 3D) for images,
    ``nearest`` for labels."""

    BILINEAR = "bilinear"
    NEAREST = "nearest"


class PaddingMode(str, Enum):
    """Value read outside the grid: ``zeros`` for images, ``border`` for fields."""

    ZEROS = "zeros"
    BORDER = "border"


class NMINormalization(str, Enum):
    """How mutual information ``I = H(A) + H(B) - H(A,B)`` is normalised.

    * ``symmetric``: ``2 I / (H(A) + H(B))`` in ``[0, 1]``; 0 for independent images (and whenever one
      image is constant), 1 for a deterministic one-to-one intensity relation with a hard histogram.
    * ``studholme``: ``(H(A) + H(B)) / H(A,B)`` in ``[1, 2]`` (Studholme et al. 1999); 1 for independent
      images, 2 for a one-to-one relation. ``studholme = 2 / (2 - symmetric)``: the same ranking.

    With a Parzen-window histogram both stay below their upper bound even for identical images (the
    kernel blurs the diagonal of the joint histogram); ``nmi(x, x)`` is still the maximum.
    """

    SYMMETRIC = "symmetric"
    STUDHOLME = "studholme"


class TranslatorKind(str, Enum):
    """``inn``: invertible translator (the method); ``resnet``: non-invertible ResNet generator
    (the "w/o INN" ablation, RegGAN-style); ``unet``: non-invertible residual U-Net (the refinement's
    guide, ``model.guide``); ``none``: no translation (direct multi-modal registration)."""

    INN = "inn"
    RESNET = "resnet"
    UNET = "unet"
    NONE = "none"


class SubnetKind(str, Enum):
    """Coupling subnetworks: ``ddc`` (dynamic depthwise conv + local attention) or plain ``conv``."""

    DDC = "ddc"
    CONV = "conv"


class SqueezeKind(str, Enum):
    """How the INN folds 2x2 (2x2x2) cells into channels: raw pixel phases (``cells``) or their
    orthonormal Haar bands (``haar``: low-pass plus details, no checkerboard cell texture)."""

    CELLS = "cells"
    HAAR = "haar"


class RegLossKind(str, Enum):
    """Similarity driving registration: NMI ``barrier`` ``-log(NMI - tau)`` or plain ``nmi`` (``1 - NMI``)."""

    BARRIER = "barrier"
    NMI = "nmi"


class RegInput(str, Enum):
    """What the registration network sees: the ``translated`` moving image or the ``raw`` one."""

    TRANSLATED = "translated"
    RAW = "raw"


class RefineInit(str, Enum):
    """Where the per-pair refinement starts: ``affine``: the network's affine stage only (the
    U-Net's local field is replaced); ``network``: the network's full field."""

    AFFINE = "affine"
    NETWORK = "network"


class FineUpdate(str, Enum):
    """Where the refinement computes the demons update on a pyramid level finer than its velocity grid:
    ``voxels``: at every voxel of the level, then resampled linearly onto the grid; ``grid``: at the grid's
    points only, the moving descriptors and their gradient read through the map there (a fraction
    ``1 / grid_factor**dim`` of the voxels)."""

    VOXELS = "voxels"
    GRID = "grid"


class LrSchedule(str, Enum):
    """Learning rate over a loop's steps: ``constant``, or ``cosine`` (half a cosine from the set rate at
    the first step towards 0 after the last)."""

    CONSTANT = "constant"
    COSINE = "cosine"


class DistilTarget(str, Enum):
    """What the distillation (:mod:`innreg.distillation`) pulls the registration network towards:
    ``field``, the refinement's affine map and its full refined field; ``affine``, the affine map alone
    (only the affine stage learns; no demons run for the targets)."""

    FIELD = "field"
    AFFINE = "affine"


class Precision(str, Enum):
    """Training arithmetic: ``fp32``; ``bf16`` autocast (CUDA or CPU); ``fp16`` autocast with loss
    scaling (CUDA only). Losses are always computed in float32."""

    FP32 = "fp32"
    BF16 = "bf16"
    FP16 = "fp16"
