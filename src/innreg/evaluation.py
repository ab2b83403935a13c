"""Evaluating any registration method on a manifest with label maps.

Per pair: Dice per label and mean over the non-zero labels present in ``fixed_seg``; HD95 per label
and mean, in mm from the fixed image's voxel spacing; fraction of non-positive Jacobian determinants
of the displacement; NMI of (moving, fixed) before and of (warped, fixed) after; endpoint error in mm
against the true field where the manifest has one; wall seconds of the registration alone. The same
numbers for the identity transform are reported beside them. On a GPU the first pair is registered twice
and its second run timed, so CUDA's one-off start-up is not counted as a pair's time. Where the manifest has
``moving_as_fixed`` (the moving anatomy imaged in the fixed contrast, as the phantom writes it):
translation fidelity, the NCC and SSIM between the method's translated moving image and that truth
inside the head, with the untranslated moving image as the floor (in the identity columns).

A method is anything with ``register(moving, fixed, moving_seg=None) -> RegistrationResult``
(:class:`innreg.inference.RegistrationModel` and the baselines); ``moving`` and ``fixed`` arrive as
:class:`innreg.data.Image` (array, affine and header, so a method can read the voxel size) and
``moving_seg`` as an array. Pairs with ``fixed_mask`` /
``moving_mask`` need a method whose ``register`` also takes ``fixed_mask=`` and ``moving_mask=`` (innreg).
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Protocol, Sequence

import numpy as np
import torch

from innreg.atomic import check_folder_spares_inputs, staged_dir
from innreg.data import (
    Interpolation,
    PairRecord,
    hu_curve_map,
    load_field,
    load_image,
    load_masks,
    load_pair,
    looks_like_hu,
    normalize_percentile,
    read_manifest,
    resample_to,
    save_image,
    voxel_spacing,
)
from innreg.errors import InnregInputError, about_file, raise_if_stopped
from innreg.inference import RegistrationResult
from innreg.losses import nmi
from innreg.metrics import dice_per_label, hd95_per_label, ncc, neg_jacobian_fraction, ssim
from innreg.results import PER_PAIR_FILE, EvaluationSummary, Overlap, PairMetrics, TranslationFidelity, write_results

EVALUATION_OUTPUTS = (PER_PAIR_FILE, "summary.json", "summary.md", "pairs", "overview_*.png")
"""What :func:`evaluate` writes into its folder (glob patterns): a new evaluation replaces all of them, so no
earlier run's overview or label map stays beside its results."""


class Registrar(Protocol):
    """What evaluation needs from a method. One that also has ``in_fixed_units`` (as
    :class:`~innreg.inference.RegistrationModel`) gets its translation shown in the fixed image's units in the
    overview figures."""

    def register(self, moving, fixed, moving_seg=None) -> RegistrationResult: ...


def _nmi(a: np.ndarray, b: np.ndarray) -> float:
    ta = torch.from_numpy(normalize_percentile(a))[None, None]
    tb = torch.from_numpy(normalize_percentile(b))[None, None]
    return float(nmi(ta, tb)[0])


def runs_on_cuda(registrar: Registrar) -> bool:
    """Whether the method computes on a CUDA device: it, or the model it wraps (``.model``, as the
    learned baselines do), has a ``device`` of type ``cuda``."""
    for obj in (registrar, getattr(registrar, "model", None)):
        device = getattr(obj, "device", None)
        if isinstance(device, torch.device):
            return device.type == "cuda"
    return False


def overlap_metrics(seg: np.ndarray, fixed_seg: np.ndarray, spacing: Sequence[float]) -> Overlap:
    """Dice and HD95 per label (non-zero labels of ``fixed_seg``); the record also gives their means."""
    labels = [int(v) for v in np.unique(fixed_seg) if v != 0]
    return Overlap(
        dice=dice_per_label(seg, fixed_seg, labels=labels),
        hd95=hd95_per_label(seg, fixed_seg, spacing=spacing, labels=labels),
    )


def _masks(registrar: Registrar, record: PairRecord, fixed, method: str) -> dict[str, np.ndarray]:
    """The record's masks as keyword arguments of ``register`` (none when the record has none)."""
    moving_mask, fixed_mask = load_masks(record, fixed)
    masks = {k: v for k, v in (("fixed_mask", fixed_mask), ("moving_mask", moving_mask)) if v is not None}
    if masks and "fixed_mask" not in inspect.signature(registrar.register).parameters:
        raise InnregInputError(f"{record.fixed}: method {method} does not take masks (fixed_mask/moving_mask)")
    return masks


def endpoint_error_mm(
    ddf: np.ndarray, true_ddf: np.ndarray, spacing: Sequence[float], mask: np.ndarray | None
) -> float:
    """Mean Euclidean distance in mm between two displacement fields ``(dim, *S)`` (inside ``mask``)."""
    scale = np.asarray(spacing, dtype=np.float64).reshape(-1, *([1] * (ddf.ndim - 1)))
    err = np.sqrt((((ddf - true_ddf) * scale) ** 2).sum(axis=0))
    return float(err[mask > 0].mean() if mask is not None and mask.any() else err.mean())


def head_mask(image: np.ndarray) -> np.ndarray:
    """The head (or brain) of a noise-free image: voxels above 5 % of its 99th percentile, holes filled.

    Filling keeps dark tissue enclosed by brighter tissue (bone inside the scalp, sinus air) in the head.
    CT in Hounsfield units is read through the soft-tissue curve first, so that air (-1000 HU), not water
    (0 HU), is the dark end the threshold measures from.
    """
    from scipy import ndimage

    if looks_like_hu(image):
        image = hu_curve_map(image)
    return ndimage.binary_fill_holes(image > 0.05 * np.percentile(image, 99))


def maps_hu_by_curve(registrar: Registrar) -> bool:
    """Whether the method reads CT in HU through the soft-tissue curve (``model.hu_curve`` of its config, or of
    the model it wraps as ``.model``, as the learned baselines do); methods without such a config do not."""
    for obj in (getattr(registrar, "model", None), registrar):
        model_config = getattr(getattr(obj, "config", None), "model", None)
        if model_config is not None:
            return bool(getattr(model_config, "hu_curve", False))
    return False


def translation_fidelity(
    translated: np.ndarray, moving: np.ndarray, truth: np.ndarray, hu_curve: bool = False
) -> TranslationFidelity:
    """NCC and SSIM of the translated moving image against ``moving_as_fixed``, inside the head.

    All three images are in the moving image's frame; each is mapped to ``[0, 1]`` by its 1st/99th
    percentiles inside the head (SSIM needs a common range). With ``hu_curve`` (the method reads CT in HU
    through the soft-tissue curve) a truth or moving image in HU is read through the curve first: the
    translation is scored in the contrast it was trained to produce, and the floor is the untranslated image
    as the method sees it. The ``identity_`` values score the untranslated moving image, the floor a
    translator should beat.
    """
    if hu_curve:
        truth, moving = (hu_curve_map(a) if looks_like_hu(a) else a for a in (truth, moving))
    # After the curve: head_mask reads HU through the same curve, so the mask is the same either way.
    mask = head_mask(truth)
    truth_n = normalize_percentile(truth, mask=mask)
    translated_n, moving_n = (normalize_percentile(image, mask=mask) for image in (translated, moving))
    return TranslationFidelity(
        ncc=ncc(translated_n, truth_n, mask),
        ssim=ssim(translated_n, truth_n, mask, data_range=1.0),
        identity_ncc=ncc(moving_n, truth_n, mask),
        identity_ssim=ssim(moving_n, truth_n, mask, data_range=1.0),
    )


def _moving_as_fixed(record: PairRecord, fixed) -> np.ndarray:
    truth = load_image(record.moving_as_fixed)
    same = truth.shape == fixed.shape and np.allclose(truth.affine, fixed.affine, atol=1e-4)
    return truth.array if same else resample_to(truth, fixed, Interpolation.LINEAR).array


def labelled_records(pairs: str | Path | Sequence[PairRecord]) -> list[PairRecord]:
    """The records of a manifest (or the records given), refused unless every pair has both label maps."""
    records = read_manifest(pairs) if isinstance(pairs, (str, Path)) else list(pairs)
    missing = [r.moving for r in records if r.moving_seg is None or r.fixed_seg is None]
    if missing:
        raise InnregInputError(f"{pairs}: evaluation needs moving_seg and fixed_seg columns (missing for {missing[0]})")
    return records


def evaluate(
    registrar: Registrar,
    pairs: str | Path | Sequence[PairRecord],
    out_dir: str | Path,
    overview_pairs: int = 3,
    progress: bool = True,
    method: str = "innreg",
) -> EvaluationSummary:
    """Register every pair of a manifest with labels and write ``per_pair.csv``, ``summary.json``,
    ``summary.md``, the warped label maps and a few overview PNGs into ``out_dir``: all of them once every
    pair has been scored (a failing pair leaves ``out_dir`` as it was), replacing an earlier evaluation's
    (:data:`EVALUATION_OUTPUTS`; other files in ``out_dir`` are kept). ``summary.json`` records the innreg
    version and, for a registrar with a ``describe()`` (:meth:`~innreg.inference.RegistrationModel.describe`),
    what it ran: model file, device, translation on or off, the refinement's settings.

    Raises:
        InnregInputError: a pair lacks a label map, or one of its files is among the outputs it would replace.

    Returns:
        The summary (also written to ``summary.json``).
    """
    records = labelled_records(pairs)
    out_dir = Path(out_dir)
    inputs = [(f"pair {i} {k}", v) for i, record in enumerate(records) for k, v in record.files()]
    check_folder_spares_inputs(out_dir, EVALUATION_OUTPUTS, inputs)
    # A broken later pair leaves no earlier pair's outputs; an earlier evaluation's outputs go.
    with staged_dir(out_dir, owned=EVALUATION_OUTPUTS) as staging:
        (staging / "pairs").mkdir()
        rows = _evaluate_pairs(registrar, records, staging, out_dir, overview_pairs, progress, method)
        summary = EvaluationSummary.of_pairs(rows, method)
        run = registrar.describe() if hasattr(registrar, "describe") else None
        write_results(rows, summary, staging, run)
    return summary


def _evaluate_pairs(
    registrar: Registrar,
    records: Sequence[PairRecord],
    staging: Path,
    out_dir: Path,
    overview_pairs: int,
    progress: bool,
    method: str,
) -> list[PairMetrics]:
    """Register and score every pair; files go to ``staging`` and are named in the rows under ``out_dir``."""
    from tqdm.auto import tqdm

    from innreg.metrics import jacobian_determinant
    from innreg.reports import registration_overview

    rows: list[PairMetrics] = []
    for i, record in enumerate(tqdm(records, desc=f"evaluate {method}", unit="pair", disable=not progress)):
        raise_if_stopped()
        moving, fixed, moving_seg, fixed_seg = load_pair(record)
        masks = _masks(registrar, record, fixed, method)
        with about_file(record.moving):
            # Images, not arrays: a method that works in mm reads the voxel size from them.
            result = registrar.register(moving, fixed, moving_seg.array, **masks)
            if i == 0 and runs_on_cuda(registrar):
                # CUDA's one-off start-up (kernels loaded, cuDNN's algorithm search) fell into the first
                # pair's seconds (0.22 s against 0.075 s a 2D pair on an H200): time its second run.
                result = registrar.register(moving, fixed, moving_seg.array, **masks)
        spacing = voxel_spacing(fixed)
        name = f"{i:04d}_{Path(record.moving).name.split('.')[0]}"
        warped_seg_path = out_dir / "pairs" / f"{name}_warped_seg.nii.gz"
        save_image(staging / "pairs" / warped_seg_path.name, result.warped_seg, fixed, dtype=np.int16)
        row = PairMetrics(
            pair=i,
            moving=str(record.moving),
            fixed=str(record.fixed),
            moving_seg=str(record.moving_seg),
            fixed_seg=str(record.fixed_seg),
            warped_seg=str(warped_seg_path),
            overlap=overlap_metrics(result.warped_seg, fixed_seg.array, spacing),
            neg_jacobian_fraction=neg_jacobian_fraction(result.ddf),
            nmi_before=_nmi(moving.array, fixed.array),
            nmi_after=_nmi(result.warped, fixed.array),
            seconds=result.seconds,
            identity=overlap_metrics(moving_seg.array, fixed_seg.array, spacing),
            phase_seconds=getattr(result, "phase_seconds", None) or None,  # innreg's; the peers time no phases
        )
        if record.true_ddf is not None:
            true = load_field(record.true_ddf)
            row.epe_mm = endpoint_error_mm(result.ddf, true, spacing, fixed_seg.array)
            row.identity_epe_mm = endpoint_error_mm(np.zeros_like(true), true, spacing, fixed_seg.array)
        if record.moving_as_fixed is not None:
            truth = _moving_as_fixed(record, fixed)
            row.translation = translation_fidelity(result.translated, moving.array, truth, maps_hu_by_curve(registrar))
        rows.append(row)
        if i < overview_pairs:
            jac = jacobian_determinant(torch.from_numpy(result.ddf)[None])[0].numpy()
            translated = result.translated
            if hasattr(registrar, "in_fixed_units"):  # shown in the fixed image's window, as register shows it
                translated = registrar.in_fixed_units(translated, fixed.array, masks.get("fixed_mask"))
            registration_overview(
                staging / f"overview_{name}.png", moving.array, fixed.array, translated, result.warped,
                result.ddf, jacobian=jac, moving_seg=moving_seg.array, fixed_seg=fixed_seg.array,
                warped_seg=result.warped_seg, title=f"{method}: pair {i}",
            )
    return rows
