"""Data: NIfTI I/O, ITK field export, intensity handling, random deformations, the head phantom and pair datasets."""

from innreg.lazy import lazy_exports

# Submodule -> the public names it defines; imported on first use, so listing the package stays light.
_EXPORTS = {
    "deformations": (
        "DeformationParams", "affine_field", "apply_deformation", "random_affine_field", "random_deformation",
        "random_elastic_field",
    ),
    "intensity": (
        "HU_CURVE_KNOTS", "Interpolation", "background_value", "bias_field", "denormalize_intensity", "hu_curve_map",
        "looks_like_hu", "normalize_intensity", "normalize_percentile", "random_bias_coefficients", "resample_to",
    ),
    "io": ("Image", "load_field", "load_image", "load_labels", "save_field", "save_image", "voxel_spacing"),
    "itk": ("itk_displacement", "save_itk_field"),
    "pairs": ("PairDataset", "PairRecord", "load_masks", "load_pair", "pad_collate", "pair_records", "read_manifest"),
    "phantom": (
        "ContrastParams", "HeadLabel", "Modality", "PHANTOM_MODALITIES", "PhantomPair", "TISSUE_INTENSITY",
        "generate_phantom_dataset", "make_phantom_pair", "save_contact_sheet",
    ),
}
__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)
