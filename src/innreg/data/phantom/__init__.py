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

from innreg.lazy import lazy_exports

# Public name -> defining submodule; imported on first use, so listing the package stays light.
_EXPORTS = {
    "ANATOMY_VARIATION": "simulate",
    "HEAD_COLUMNS": "dataset",
    "HEAD_INTENSITY": "contrast",
    "MANIFEST_COLUMNS": "dataset",
    "NO_CONTRAST_VARIATION": "acquisition",
    "PHANTOM_MODALITIES": "contrast",
    "SKULL_STRIPPED_CONTRAST": "acquisition",
    "TISSUE_INTENSITY": "contrast",
    "ContrastParams": "acquisition",
    "HeadLabel": "head",
    "Modality": "contrast",
    "MotionParams": "simulate",
    "PhantomPair": "simulate",
    "SliceAxis": "template",
    "contact_sheet_figure": "contact_sheet",
    "generate_phantom_dataset": "dataset",
    "make_phantom_pair": "simulate",
    "save_contact_sheet": "contact_sheet",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = list(_EXPORTS)
