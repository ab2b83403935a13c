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

# Submodule -> the public names it defines; imported on first use, so listing the package stays light.
_EXPORTS = {
    "acquisition": ("ContrastParams", "NO_CONTRAST_VARIATION", "SKULL_STRIPPED_CONTRAST"),
    "contact_sheet": ("contact_sheet_figure", "save_contact_sheet"),
    "contrast": ("HEAD_INTENSITY", "Modality", "PHANTOM_MODALITIES", "TISSUE_INTENSITY"),
    "dataset": ("HEAD_COLUMNS", "MANIFEST_COLUMNS", "generate_phantom_dataset"),
    "head": ("HeadLabel",),
    "simulate": ("ANATOMY_VARIATION", "MotionParams", "PhantomPair", "make_phantom_pair"),
    "template": ("SliceAxis",),
}
__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)
