"""Simulated multi-modal head phantom built from the ICBM152 2009 template shipped with nilearn.

* :mod:`~innreg.data.phantom.template`: the template, the head geometry around it, grids.
* :mod:`~innreg.data.phantom.head`: non-brain tissue classes (skull, scalp, eyes, sinuses...).
* :mod:`~innreg.data.phantom.contrast`: T1, T2, PD, FLAIR and CT from tissue physics.
* :mod:`~innreg.data.phantom.acquisition`: slice thickness, resolution, ringing, bias, noise, field of view.
* :mod:`~innreg.data.phantom.simulate`: one pair with its true field and ``moving_as_fixed``.
* :mod:`~innreg.data.phantom.dataset`: writing a data set; :mod:`~innreg.data.phantom.contact_sheet`.

Brain labels: 0 outside the brain (mask < 0.5), 1 CSF, 2 GM, 3 WM (argmax of the tissue
probabilities; CSF = brain mask minus GM and WM). Each pair gets its own "subject" by a mild random
deformation of the template anatomy and a random head geometry.
"""

from innreg.data.phantom.acquisition import NO_CONTRAST_VARIATION, SKULL_STRIPPED_CONTRAST, ContrastParams
from innreg.data.phantom.contact_sheet import contact_sheet_figure, save_contact_sheet
from innreg.data.phantom.contrast import HEAD_INTENSITY, PHANTOM_MODALITIES, TISSUE_INTENSITY, Modality
from innreg.data.phantom.dataset import HEAD_COLUMNS, MANIFEST_COLUMNS, generate_phantom_dataset
from innreg.data.phantom.head import HeadLabel
from innreg.data.phantom.simulate import ANATOMY_VARIATION, MotionParams, PhantomPair, make_phantom_pair
from innreg.data.phantom.template import SliceAxis

__all__ = [
    "ANATOMY_VARIATION",
    "HEAD_COLUMNS",
    "HEAD_INTENSITY",
    "MANIFEST_COLUMNS",
    "NO_CONTRAST_VARIATION",
    "PHANTOM_MODALITIES",
    "SKULL_STRIPPED_CONTRAST",
    "TISSUE_INTENSITY",
    "ContrastParams",
    "HeadLabel",
    "Modality",
    "MotionParams",
    "PhantomPair",
    "SliceAxis",
    "contact_sheet_figure",
    "generate_phantom_dataset",
    "make_phantom_pair",
    "save_contact_sheet",
]
