"""What a file is, as innreg reads it: a NIfTI image's geometry and intensities, or a model file's
networks, training and refinement (``innreg info``).

Each description is an ordered mapping of plain values (JSON-ready); :func:`describe_file` picks the
kind by the file's name. Reading goes through the same readers as registration
(:func:`innreg.data.load_image`, :func:`innreg.model_file.read_model`), so a file that ``register``
would refuse is refused here with the same one-line message.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from innreg.errors import InnregInputError

if TYPE_CHECKING:
    from innreg.config import ModelConfig

# Without a NIfTI intent, read as a label map: non-negative whole numbers, at most this many distinct values
# (an 8-bit MR image holds more; FreeSurfer's aparc+aseg about 110).
_MAX_LABELS = 128


def describe_image(path: str | os.PathLike) -> dict[str, Any]:
    """A NIfTI image's geometry and intensities as innreg reads it.

    Keys: ``kind`` (``"image"`` or ``"label map"``), ``disk_shape`` and ``dtype`` (the file's),
    ``dim`` and ``shape`` (the array innreg registers, singleton axes squeezed), ``spacing_mm`` (per array
    axis), ``orientation`` (the world direction each array axis points to, RAS+ codes), ``origin_mm``;
    for images ``range`` (min, max), ``percentiles_1_99`` and ``hounsfield`` (whether innreg maps it
    as CT in HU when the model's ``hu_curve`` is on); for label maps ``label_voxels`` (voxels per
    non-zero label). The header's intent decides the kind where it names one (``NIFTI_INTENT_LABEL``: a
    label map, any other: an image); without one, non-negative whole numbers with few distinct values
    are read as labels.

    Raises:
        InnregInputError: what :func:`~innreg.data.load_image` raises, and a label map by its header that
            holds values other than whole numbers (``register --moving-seg`` refuses it alike).
    """
    import nibabel as nib

    from innreg.data import load_image, voxel_spacing
    from innreg.data.io import check_label_values
    from innreg.data.intensity import looks_like_hu

    image = load_image(path)
    array = image.array
    disk = image.header.get_data_shape()
    # The in-memory affine keeps a column for every axis of the file; its first `dim` belong to the array.
    codes = nib.aff2axcodes(image.affine)[: image.dim]
    facts: dict[str, Any] = {
        "file": str(image.path),
        "kind": "image",
        "disk_shape": [int(s) for s in disk],
        "dtype": str(image.header.get_data_dtype()),
        "dim": image.dim,
        "shape": list(image.shape),
        "spacing_mm": [round(s, 4) for s in voxel_spacing(image)],
        "orientation": "".join(codes),
        "origin_mm": [round(float(v), 3) for v in image.affine[:3, 3]],
    }
    intent = image.header.get_intent()[0]
    if intent == "label":  # a label map by its header must hold what register --moving-seg accepts
        check_label_values(image.path, array)
    label_voxels = _label_voxels(array, intent)
    if label_voxels is not None:
        facts.update(kind="label map", label_voxels=label_voxels)
        return facts
    low, high = np.percentile(array, [1, 99])
    facts.update(
        range=[float(array.min()), float(array.max())],
        percentiles_1_99=[round(float(low), 4), round(float(high), 4)],
        hounsfield=bool(looks_like_hu(array)),
    )
    return facts


def _label_voxels(array: np.ndarray, intent: str) -> dict[int, int] | None:
    """Voxels per non-zero label where ``array`` reads as a label map (by the header's intent name where
    set, else by its values), else ``None``."""
    if intent not in ("none", "label"):
        return None
    if intent == "none" and not (array.min() >= 0 and np.array_equal(array, np.round(array))):
        return None
    values, counts = np.unique(array, return_counts=True)
    if intent == "none" and len(values) > _MAX_LABELS:
        return None
    return {int(v): int(n) for v, n in zip(values, counts) if v != 0}


def describe_model(path: str | os.PathLike) -> dict[str, Any]:
    """A model file's networks, training and refinement.

    Keys: ``kind`` (``"model"``), ``dim``, ``written_by`` (innreg and torch versions, where recorded),
    ``translator`` and ``guide`` (their kind and size, or ``None``), ``registration`` (the network's
    passes and affine stage), ``parameters`` (weights per network), ``working_factor`` (the networks'
    downsampling of the input), ``hu_curve``, ``training`` (what the trainer recorded: steps, pairs,
    minutes), ``refinement`` (on or off, its start and steps per level, the translation's weight).

    Raises:
        InnregInputError: an unreadable model file, or weights that do not fit its config.
    """
    from innreg.core.enums import RefineInit, RegInput
    from innreg.model_file import read_model

    saved = read_model(path)
    saved.network()  # the weights must fit the config, as for registration
    model, refine, info = saved.config.model, saved.config.refine, saved.info
    parameters: dict[str, int] = {}
    for name, tensor in saved.state_dict.items():
        network = name.split(".")[0]
        parameters[network] = parameters.get(network, 0) + int(tensor.numel())
    versions = {key: info[key] for key in ("innreg_version", "torch_version") if key in info}
    training = {key: info[key] for key in ("steps", "n_pairs") if key in info}
    if "train_seconds" in info:
        training["minutes"] = round(float(info["train_seconds"]) / 60, 1)
    return {
        "file": str(path),
        "kind": "model",
        "dim": model.dim,
        "written_by": versions or None,
        "translator": _translator(model.translator, model),
        "guide": _translator(model.guide, model, slice_wise=model.guide_slices),
        "registration": {
            "passes": model.cascades,
            "affine_stage": model.affine,
            "diffeomorphic": model.diffeomorphic,
            "input": RegInput(model.reg_input).value,
        },
        "parameters": parameters,
        "working_factor": model.input_factor,
        "hu_curve": model.hu_curve,
        "training": training or None,
        "refinement": {
            "enabled": refine.enabled,
            "start": RefineInit(refine.init).value,
            "factors": list(refine.factors),
            "steps": list(refine.steps),
            "translation_weight": refine.translation_weight,
            "inverse_weight": refine.inverse_weight,
        }
        if refine.enabled
        else {"enabled": False},
    }


def _translator(kind: str, model: ModelConfig, slice_wise: bool = False) -> dict[str, Any] | None:
    """A translator's kind and size (``None`` for ``none``)."""
    from innreg.core.enums import SqueezeKind, TranslatorKind

    kind = TranslatorKind(kind)
    if kind is TranslatorKind.NONE:
        return None
    facts: dict[str, Any] = {"kind": kind.value}
    if kind is TranslatorKind.INN:
        facts.update(blocks=model.inn_blocks, hidden=model.inn_hidden, squeeze=SqueezeKind(model.squeeze).value)
    elif kind is TranslatorKind.RESNET:
        facts.update(blocks=model.resnet_blocks, channels=model.resnet_channels)
    if slice_wise:
        facts["slice_wise"] = True
    return facts


def describe_file(path: str | os.PathLike) -> dict[str, Any]:
    """:func:`describe_model` for a ``.pt`` file, :func:`describe_image` for a NIfTI one.

    Raises:
        InnregInputError: a name that is neither, or what the reader of its kind refuses (a missing file too).
    """
    from innreg.data.io import NIFTI_SUFFIXES

    path = Path(path)
    if path.name.endswith(".pt"):
        return describe_model(path)
    if path.name.endswith(NIFTI_SUFFIXES):
        return describe_image(path)
    raise InnregInputError(f"{path}: not a model file (.pt) or a NIfTI image (.nii, .nii.gz)")
