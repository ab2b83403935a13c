"""Data: NIfTI I/O, ITK field export, intensity handling, random deformations, the head phantom and pair datasets."""

from innreg.data.deformations import (
    DeformationParams,
    affine_field,
    apply_deformation,
    random_affine_field,
    random_deformation,
    random_elastic_field,
)
from innreg.data.intensity import Interpolation, normalize_percentile, resample_to
from innreg.data.io import Image, load_field, load_image, load_labels, save_field, save_image, voxel_spacing
from innreg.data.itk import itk_displacement, save_itk_field
from innreg.data.pairs import PairDataset, PairRecord, load_masks, load_pair, pad_collate, read_manifest
from innreg.data.phantom import (
    PHANTOM_MODALITIES,
    TISSUE_INTENSITY,
    ContrastParams,
    HeadLabel,
    Modality,
    PhantomPair,
    generate_phantom_dataset,
    make_phantom_pair,
    save_contact_sheet,
)

__all__ = [
    "PHANTOM_MODALITIES",
    "TISSUE_INTENSITY",
    "ContrastParams",
    "DeformationParams",
    "HeadLabel",
    "Image",
    "Interpolation",
    "Modality",
    "PairDataset",
    "PairRecord",
    "PhantomPair",
    "affine_field",
    "apply_deformation",
    "generate_phantom_dataset",
    "itk_displacement",
    "load_field",
    "load_image",
    "load_labels",
    "load_masks",
    "load_pair",
    "make_phantom_pair",
    "normalize_percentile",
    "pad_collate",
    "random_affine_field",
    "random_deformation",
    "random_elastic_field",
    "read_manifest",
    "resample_to",
    "save_contact_sheet",
    "save_field",
    "save_image",
    "save_itk_field",
    "voxel_spacing",
]
