"""Tissue contrasts from tissue physics: T1, T2, PD, FLAIR and CT for the brain and every head class.

MR signals come from the spin-echo / inversion-recovery equations with 1.5 T relaxation times and
proton densities (T1 ms, T2 ms, PD; BrainWeb for the brain, fat and muscle, literature values for
the rest), times an approximate incidental magnetisation-transfer (MT) factor of multi-slice turbo
spin echo (Dixon et al., Radiology 1990):

==============  ======  =====  ====  ====  =======
tissue          T1      T2     PD    MT    CT (HU)
==============  ======  =====  ====  ====  =======
CSF             2569    329    1.0   1.0   8
GM              833     83     0.86  0.93  38
WM              500     70     0.77  0.85  27
cortical bone   1000    1      0.05  1.0   1200
marrow          365     60     0.8   1.0   450
muscle          900     47     0.8   0.75  50
fat             350     160    1.0   1.0   -100
skin            750     55     0.85  0.85  40
eye (vitreous)  3900    400    1.0   1.0   12
air             --      --     0     --    -1000
==============  ======  =====  ====  ====  =======

Fat's T2 is its apparent value in turbo spin echo (J-coupling), which is why fat is bright on T2.
Sequences: ``t1`` spin echo TR 500 / TE 12 for the head classes and the real template T1 for the
brain (scaled so that its white matter meets the equation's value); ``t2`` TR 5000 / TE 100;
``pd`` TR 6000 / TE 15 (GM/WM ~1.26, below T2's ~1.5); ``flair`` TR 9000 / TE 120 with the TI that
nulls CSF; ``ct`` in the brain window (level 40, width 80 HU), so bone is white and fat black
(values beyond the window are kept up to half a window until the noise is added, then clipped);
``ct-hu`` the same CT in Hounsfield units as a scanner writes it, no window (fat between air and soft
tissue; inside the generator air is 0, as every contrast's background, and the files hold HU).
Every contrast is scaled so that its brightest brain tissue is 1. Per case each tissue value is
jittered (:attr:`ContrastParams.jitter <innreg.data.phantom.acquisition.ContrastParams>`).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import numpy as np

from innreg.data.phantom.head import HeadLabel


class Modality(str, Enum):
    """Simulated contrasts."""

    T1 = "t1"
    T2 = "t2"
    PD = "pd"
    FLAIR = "flair"
    CT = "ct"
    CT_HU = "ct-hu"


PHANTOM_MODALITIES: tuple[str, ...] = tuple(m.value for m in Modality)

# Rows: CSF, GM, WM, then head labels 1..8 (outer CSF, bone, marrow, muscle, fat, skin, eye, air).
_T1 = np.array([2569.0, 833, 500, 2569, 1000, 365, 900, 350, 750, 3900, 1000])
_T2 = np.array([329.0, 83, 70, 329, 1, 60, 47, 160, 55, 400, 1])
_PD = np.array([1.0, 0.86, 0.77, 1.0, 0.05, 0.8, 0.8, 1.0, 0.85, 1.0, 0.0])
_MT = np.array([1.0, 0.93, 0.85, 1.0, 1.0, 1.0, 0.75, 1.0, 0.85, 1.0, 1.0])
_HU = np.array([8.0, 38, 27, 8, 1200, 450, 50, -100, 40, 12, -1000])
_CT_WINDOW = (40.0, 80.0)  # level, width
_AIR_HU = -1000.0
_N_BRAIN = 3


def _spin_echo(tr: float, te: float, mt: bool = True) -> np.ndarray:
    factor = _MT if mt else 1.0
    return factor * _PD * (1 - np.exp(-tr / _T1)) * np.exp(-te / _T2)


def _flair(tr: float, te: float) -> np.ndarray:
    # Inversion time that nulls CSF: 1 - 2 exp(-TI/T1) + exp(-TR/T1) = 0.
    ti = -_T1[0] * np.log((1 + np.exp(-tr / _T1[0])) / 2)
    mz = np.abs(1 - 2 * np.exp(-ti / _T1) + np.exp(-tr / _T1))
    return _MT * _PD * mz * np.exp(-te / _T2)


def _scaled(values: np.ndarray) -> np.ndarray:
    return values / values[:_N_BRAIN].max()


# Mean intensity of every tissue (rows as above) in each contrast.
_TISSUE_TABLE: dict[Modality, np.ndarray] = {
    Modality.T1: _scaled(_spin_echo(tr=500.0, te=12.0, mt=False)),
    Modality.T2: _scaled(_spin_echo(tr=5000.0, te=100.0)),
    Modality.PD: _scaled(_spin_echo(tr=6000.0, te=15.0)),
    Modality.FLAIR: _scaled(_flair(tr=9000.0, te=120.0)),
    # Kept half a window beyond the display range, so that noise (added in HU) leaves air black and
    # bone white once :func:`stored_image` clips; partial volume with bone still brightens its neighbours.
    Modality.CT: np.clip((_HU - (_CT_WINDOW[0] - _CT_WINDOW[1] / 2)) / _CT_WINDOW[1], -0.5, 1.5),
    # Window widths above air, unclipped: zero is air, so padding and field-of-view cuts stay air.
    Modality.CT_HU: (_HU - _AIR_HU) / _CT_WINDOW[1],
}
# Tissue values are jittered relative to this level (water for CT in HU, so that a 4 % jitter moves
# grey matter by 1.5 HU, not by 40), else relative to zero.
_JITTER_ORIGIN = {Modality.CT_HU: -_AIR_HU / _CT_WINDOW[1]}


def is_ct(modality: Modality) -> bool:
    """CT in either form: Gaussian noise in HU and no bias field."""
    return modality in (Modality.CT, Modality.CT_HU)


# Mean intensity of (CSF, GM, WM) in each synthetic brain contrast (t1 uses the real template instead).
TISSUE_INTENSITY: dict[Modality, tuple[float, float, float]] = {
    m: tuple(float(v) for v in _TISSUE_TABLE[m][:_N_BRAIN]) for m in Modality if m != Modality.T1
}
# Mean intensity of every head label (index = :class:`HeadLabel` value; 0 = air outside) per contrast.
HEAD_INTENSITY: dict[Modality, tuple[float, ...]] = {
    m: (0.0, *(float(v) for v in _TISSUE_TABLE[m][_N_BRAIN:])) for m in Modality
}


def stored_image(modality: Modality, image: np.ndarray) -> np.ndarray:
    """The stored image: ``ct`` clipped to its window ``[0, 1]``, ``ct-hu`` in HU, MR unchanged."""
    if modality == Modality.CT:
        return np.clip(image, 0.0, 1.0).astype(np.float32)
    if modality == Modality.CT_HU:
        return (image * _CT_WINDOW[1] + _AIR_HU).astype(np.float32)
    return image


@dataclass
class TissueValues:
    """One image's drawn tissue intensities: brain ``(3,)``, head ``(9,)``, T1 template gain and gamma."""

    brain: np.ndarray
    head: np.ndarray
    t1_gain: float
    t1_gamma: float


def draw_tissue_values(modality: Modality, jitter: float, rng: np.random.Generator) -> TissueValues:
    """Tissue means with relative jitter ``U(-jitter, jitter)`` (twice that outside the brain)."""
    table, origin = _TISSUE_TABLE[modality], _JITTER_ORIGIN.get(modality, 0.0)
    brain = origin + (table[:_N_BRAIN] - origin) * (1 + rng.uniform(-jitter, jitter, _N_BRAIN))
    head = np.asarray(HEAD_INTENSITY[modality])
    # Air (a value of 0: outside the head, sinuses; CT in HU included) stays exactly air.
    head = np.where(head == 0, 0.0, origin + (head - origin) * (1 + rng.uniform(-2 * jitter, 2 * jitter, len(HeadLabel))))
    gain, gamma = 1 + rng.uniform(-jitter, jitter, 2)
    return TissueValues(brain, head, float(gain), float(gamma))


def sharpened(probabilities: np.ndarray, power: float = 2.0) -> np.ndarray:
    """Partial-volume fractions of one subject from the probabilities of an average template.

    The ICBM152 maps average 152 brains, so tissue borders are much wider than one subject's
    partial-volume zone; raising to ``power`` and renormalising (same total, the brain mask) narrows them.
    """
    raised = probabilities**power
    total = raised.sum(0)
    return np.where(total > 0, raised * (probabilities.sum(0) / np.maximum(total, 1e-12)), 0.0)


def clean_image(
    modality: Modality,
    values: TissueValues,
    t1: np.ndarray,
    fractions: np.ndarray,
    head: np.ndarray | None,
    wm_t1: float,
) -> np.ndarray:
    """Noise-free image of one contrast.

    Args:
        modality: the contrast.
        values: drawn tissue intensities (:func:`draw_tissue_values`).
        t1: ``S`` template T1 (used by ``t1`` for the brain).
        fractions: ``(3, *S)`` CSF, GM, WM partial-volume fractions (sum = brain-mask probability).
        head: ``S`` head labels, or ``None`` for a skull-stripped image (nothing outside the brain).
        wm_t1: the template's white-matter T1 level.

    Returns:
        float32 ``S``.
    """
    if modality == Modality.T1:
        brain = values.t1_gain * np.clip(t1 / wm_t1, 0, None) ** values.t1_gamma * values.brain[2]
    else:
        brain = np.einsum("t,t...->...", values.brain, fractions)
    if head is None:
        return brain.astype(np.float32)
    weight = np.clip(fractions.sum(0), 0.0, 1.0)
    # Brain voxels carry head label 0; their non-brain share is CSF, as is the outer CSF around them.
    surround = np.where((head == HeadLabel.NONE) & (weight > 0), values.head[HeadLabel.OUTER_CSF], values.head[head])
    return (brain + (1 - weight) * surround).astype(np.float32)
