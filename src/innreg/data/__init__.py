"""Data: NIfTI I/O, ITK field export, intensity handling, random deformations, the head phantom and pair datasets."""

from innreg.lazy import lazy_exports

# Public name -> defining submodule; imported on first use, so listing the package stays light.
_EXPORTS = {
    "PHANTOM_MODALITIES": "phantom",
    "TISSUE_INTENSITY": "phantom",
    "ContrastParams": "phantom",
    "DeformationParams": "deformations",
    "HeadLabel": "phantom",
    "Image": "io",
    "Interpolation": "intensity",
    "Modality": "phantom",
    "PairDataset": "pairs",
    "PairRecord": "pairs",
    "PhantomPair": "phantom",
    "affine_field": "deformations",
    "apply_deformation": "deformations",
    "generate_phantom_dataset": "phantom",
    "itk_displacement": "itk",
    "load_field": "io",
    "load_image": "io",
    "load_labels": "io",
    "load_masks": "pairs",
    "load_pair": "pairs",
    "make_phantom_pair": "phantom",
    "normalize_percentile": "intensity",
    "pad_collate": "pairs",
    "random_affine_field": "deformations",
    "random_deformation": "deformations",
    "random_elastic_field": "deformations",
    "read_manifest": "pairs",
    "resample_to": "intensity",
    "save_contact_sheet": "phantom",
    "save_field": "io",
    "save_image": "io",
    "save_itk_field": "itk",
    "voxel_spacing": "io",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = list(_EXPORTS)
