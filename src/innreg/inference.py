"""Registering images with a trained model: ``load_model(path).register(moving, fixed)``.

Inputs may be NumPy arrays, torch tensors, nibabel images or :class:`innreg.data.Image` objects, 2D
(H, W) or 3D (D, H, W), matching the model's ``dim``. Both images must be on one grid (the CLI
resamples the moving image onto the fixed grid first). Intensities are normalised to [0, 1] by
percentiles, exactly as in training; the warped output keeps the moving image's own intensities.
The stages that run (the network, then unless ``config.refine.enabled`` is off the per-pair refinement,
guided by the translated moving image when ``refine.translation_weight > 0`` and by the fixed image
translated back when ``refine.inverse_weight > 0``) are chosen by
:func:`innreg.pipeline.registration_chain`; the refinement's time counts in
``RegistrationResult.seconds``. ``load_model(..., translate=False)`` runs the identical pipeline on the
untranslated moving image (the translation ablation).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from innreg.chain import stage_name
from innreg.config import Config
from innreg.core.warp import warp
from innreg.data import Image, background_value, denormalize_intensity, normalize_intensity, voxel_spacing
from innreg.errors import InnregInputError, about_file
from innreg.memory import keep_freed_memory
from innreg.model import INNReg, check_network_size, resolve_device
from innreg.model_file import read_model
from innreg.pipeline import registration_chain, stage_pair


@dataclass
class RegistrationResult:
    """Output of one registration, as NumPy arrays on the fixed grid.

    Attributes:
        warped: moving image pulled onto the fixed grid, original intensities, shape ``S``; points from outside
            the moving grid read its background (:func:`~innreg.data.intensity.background_value`).
        translated: moving image translated to the fixed modality (normalised intensities), ``S``, as the
            refinement matched it (the guide's translation for a model with ``model.guide``); the raw
            normalised moving image for models without translator or with ``translate=False``.
        ddf: displacement ``(dim, *S)`` in voxels, channel k = axis k, pull-back:
            ``warped(x) = moving(x + ddf(x))``.
        inverse_ddf: displacement of the inverse map ``(dim, *S)``, same convention, so
            ``moving ~= fixed_like(x + inverse_ddf(x))`` pulls fixed-grid data back onto the moving grid.
        warped_seg: moving label map warped with nearest neighbour (``None`` if not given).
        seconds: wall time of the registration itself (normalisation, networks, warping).
        phase_seconds: ``seconds`` by phase, in the order run: ``"translate"`` (``"prepare"`` with
            ``translate=False``; intensity normalisation included), each stage by name (e.g. ``"demons"``), then
            ``"warp"`` (the outputs onto the fixed grid).
    """

    warped: np.ndarray
    translated: np.ndarray
    ddf: np.ndarray
    inverse_ddf: np.ndarray
    warped_seg: np.ndarray | None
    seconds: float
    phase_seconds: dict[str, float] = field(default_factory=dict)


class _PhaseClock:
    """Wall seconds per phase of one registration: calling it with a name ends the running phase and starts
    that one (and tells ``on_phase``). On CUDA each phase ends by waiting for its queued kernels, so its seconds
    are its own, not the launches of the next."""

    def __init__(self, device: torch.device, on_phase: Callable[[str], None] | None) -> None:
        self.device, self.on_phase = device, on_phase
        self.seconds: dict[str, float] = {}
        self._phase: str | None = None
        self._since = 0.0

    def __call__(self, name: str | None) -> None:
        if self._phase is not None:
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            now = time.perf_counter()
            self.seconds[self._phase] = self.seconds.get(self._phase, 0.0) + now - self._since
        self._phase, self._since = name, time.perf_counter()
        if name is not None and self.on_phase is not None:
            self.on_phase(name)


def as_array(image, name: str = "image") -> np.ndarray:
    """Array view of an array, tensor, nibabel image or :class:`Image`, checked to be finite 2D/3D."""
    if isinstance(image, Image):
        array = image.array
    elif hasattr(image, "get_fdata"):
        array = np.asarray(image.get_fdata(dtype=np.float32))
    elif isinstance(image, torch.Tensor):
        array = image.detach().cpu().numpy()
    else:
        array = np.asarray(image)
    array = np.squeeze(array) if array.ndim > 3 else array
    if array.ndim not in (2, 3):
        raise InnregInputError(f"{name}: expected a 2D or 3D image, got shape {array.shape}")
    return array


def grid_spacing(image) -> tuple[float, ...] | None:
    """Voxel size (mm per axis) of an :class:`Image` or a nibabel image; ``None`` for plain arrays."""
    if isinstance(image, Image):
        return voxel_spacing(image)
    if hasattr(image, "header") and hasattr(image.header, "get_zooms"):
        return tuple(float(z) for z in image.header.get_zooms()[: len(image.shape)])
    return None


class RegistrationModel:
    """A trained INNReg model ready to register pairs (weights, config and device)."""

    def __init__(
        self, model: INNReg, config: Config, device: torch.device, translate: bool = True, source: str | None = None
    ) -> None:
        self.model = model.eval().to(device)
        self.config = config
        self.device = device
        # False: the "no translation" ablation, the identical pipeline on the untranslated moving image.
        self.translate = translate
        self.source = source  # the model file it was loaded from, if any

    def describe(self) -> dict[str, Any]:
        """What this model runs, as plain values (recorded in an evaluation's ``summary.json`` and a
        registration's ``registration.json``): the innreg version, model file, device, torch's CPU threads
        (the seconds depend on them; ``--threads``), whether the moving image is translated, and the
        refinement's settings."""
        from innreg import __version__

        return {
            "innreg_version": __version__,
            "model": self.source,
            "device": str(self.device),
            "cpu_threads": torch.get_num_threads(),
            "translate": self.translate,
            "refine": self.config.to_dict()["refine"],
        }

    @property
    def dim(self) -> int:
        return self.config.model.dim

    def _tensor(self, array: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))[None, None].to(self.device)

    @staticmethod
    def _mask(mask, name: str, shape: tuple[int, ...]) -> np.ndarray | None:
        """Boolean mask array (``None`` stays ``None``), checked against the images' shape."""
        if mask is None:
            return None
        array = as_array(mask, name)
        if array.shape != shape:
            raise InnregInputError(f"{name} {array.shape} does not match the images {shape}")
        return array != 0

    def in_fixed_units(self, values: np.ndarray, fixed, fixed_mask=None) -> np.ndarray:
        """``values`` in the normalised fixed contrast (e.g. :attr:`RegistrationResult.translated`) put into
        ``fixed``'s units by the inverse of the mapping :meth:`register` gives ``fixed`` (with the same mask):
        HU for CT in HU read through the soft-tissue curve, else the fixed image's 1st/99th percentile values."""
        fixed_arr = as_array(fixed, "fixed")
        mask = self._mask(fixed_mask, "fixed_mask", fixed_arr.shape)
        return denormalize_intensity(values, fixed_arr, mask, self.config.model.hu_curve)

    @torch.no_grad()
    def register(
        self,
        moving,
        fixed,
        moving_seg=None,
        fixed_mask=None,
        moving_mask=None,
        spacing: tuple[float, ...] | None = None,
        on_phase: Callable[[str], None] | None = None,
    ) -> RegistrationResult:
        """Register ``moving`` onto ``fixed`` (same grid) and optionally warp ``moving_seg``.

        ``fixed_mask`` / ``moving_mask`` (same grid, non-zero = use the voxel; the moving mask in
        moving space) restrict the refinement's similarity to the masked region; they have no effect
        when the refinement is off (the network alone sees the whole images). ``spacing`` (mm per
        axis) sizes the refinement's regulariser and descriptor in mm on grids coarser than
        ``refine.reference_spacing`` (finer grids keep the sizes in voxels);
        by default it is read from ``fixed`` when that is an :class:`Image` or a nibabel image, and
        plain arrays are taken to have the reference voxel size. ``on_phase(name)``, when given, is
        called as each phase starts (``"translate"``, ``"prepare"`` with ``translate=False``, then each
        stage's name, then ``"warp"``; progress reports); the result's ``phase_seconds`` times them.

        Returns:
            A :class:`RegistrationResult` (see its fields for shapes and conventions).
        """
        moving_arr, fixed_arr = as_array(moving, "moving"), as_array(fixed, "fixed")
        if moving_arr.ndim != self.dim:
            raise InnregInputError(f"moving: the model registers {self.dim}D images, got {moving_arr.ndim}D")
        if moving_arr.shape != fixed_arr.shape:
            raise InnregInputError(
                f"moving {moving_arr.shape} and fixed {fixed_arr.shape} differ in shape; resample onto one grid first"
            )
        check_network_size(moving_arr.shape, self.config.model.input_factor, "moving")
        fixed_in = self._mask(fixed_mask, "fixed_mask", fixed_arr.shape)
        moving_in = self._mask(moving_mask, "moving_mask", fixed_arr.shape)
        start = time.perf_counter()
        clock = _PhaseClock(self.device, on_phase)
        clock("translate" if self.translate else "prepare")
        # Intensity percentiles from inside the masks: an excluded artefact must not set the scale either.
        hu_curve = self.config.model.hu_curve
        m = self._tensor(normalize_intensity(moving_arr, moving_in, hu_curve))
        f = self._tensor(normalize_intensity(fixed_arr, fixed_in, hu_curve))
        masks = [None if x is None else self._tensor(x) for x in (fixed_in, moving_in)]
        refine = self.config.refine
        pair = stage_pair(
            self.model, m, f, self.translate, *masks, spacing=spacing or grid_spacing(fixed),
            inverse=refine.enabled and refine.inverse_weight > 0, inverse_factor=refine.inverse_factor,
        )
        chain = registration_chain(self.model, self.config)
        transform = chain(pair, on_stage=lambda stage: clock(stage_name(stage)))
        clock("warp")
        ddf, inverse_ddf = transform.ddf, transform.inverse
        # The translation the refinement matched, or the moving image itself without translator.
        translated = pair.image if pair.guide is None else pair.guide
        # Points pulled from outside the moving grid read its background (air for CT in HU), not 0.
        warped = warp(self._tensor(moving_arr), ddf, fill=background_value(moving_arr))
        warped_seg = None
        if moving_seg is not None:
            seg = as_array(moving_seg, "moving_seg")
            if seg.shape != moving_arr.shape:
                raise InnregInputError(f"moving_seg {seg.shape} does not match moving {moving_arr.shape}")
            labels = torch.from_numpy(np.ascontiguousarray(seg, dtype=np.int64))[None, None].to(self.device)
            warped_seg = warp(labels, ddf, mode="nearest")[0, 0].cpu().numpy().astype(seg.dtype)
        result = RegistrationResult(
            warped=warped[0, 0].cpu().numpy(),
            translated=translated[0, 0].cpu().numpy(),
            ddf=ddf[0].cpu().numpy(),
            inverse_ddf=inverse_ddf[0].cpu().numpy(),
            warped_seg=warped_seg,
            seconds=0.0,
        )
        clock(None)
        result.seconds, result.phase_seconds = time.perf_counter() - start, clock.seconds
        return result


def load_model(
    path: str | Path,
    device: str | torch.device = "auto",
    refine: bool | Mapping[str, Any] | None = None,
    translate: bool = True,
) -> RegistrationModel:
    """Load ``model.pt`` written by :func:`innreg.train` (weights and config travel together).

    Also sets the process's malloc to keep freed memory for reuse (:mod:`innreg.memory`; about 40 %
    off a 2D registration on a CPU; ``INNREG_KEEP_FREED_MEMORY=0`` leaves malloc alone).

    Args:
        path: the model file.
        device: ``auto``, ``cpu`` or ``cuda[:k]``.
        refine: ``True``/``False`` switch the per-pair refinement on or off; a mapping overrides keys
            of the model's ``refine`` section (e.g. ``{"smooth_sigma": 1.0}``); ``None`` keeps it.
        translate: ``False`` runs the identical pipeline on the untranslated moving image (the
            translation ablation, ``--no-translate``).
    """
    keep_freed_memory()
    dev = resolve_device(device)
    saved = read_model(path, dev)
    config = saved.config
    if refine is not None:
        config = config.updated(refine={"enabled": refine} if isinstance(refine, bool) else dict(refine))
    model = saved.network()
    return RegistrationModel(model, config, dev, translate, source=str(path))


def write_registration(
    model: RegistrationModel, record, out_dir: str | Path, on_phase: Callable[[str], None] | None = None
) -> RegistrationResult:
    """Register one manifest record and write its outputs, all on the fixed image's grid and header.
    ``on_phase`` as in :meth:`RegistrationModel.register`, and ``"write outputs"`` before the files.

    Files: ``warped.nii.gz`` (moving intensities), ``translated.nii.gz`` (in the fixed image's units:
    :meth:`RegistrationModel.in_fixed_units`), ``ddf.nii.gz`` and
    ``inverse_ddf.nii.gz`` (voxel units, pull-back, component k along voxel axis k; the convention is
    also in each file's header description), the same two maps as ITK/ANTs displacement fields
    ``ddf_itk.nii.gz`` and ``inverse_ddf_itk.nii.gz`` (mm, LPS; :mod:`innreg.data.itk`), the grids
    ``fixed_grid.nii.gz`` and ``moving_grid.nii.gz`` that ``innreg apply`` needs
    (:mod:`innreg.warping`), ``warped_seg.nii.gz`` when ``record.moving_seg`` is set, ``overview.png``, and
    ``registration.json`` (the inputs, seconds and their split by phase, the fraction of non-positive
    Jacobian determinants, and what ran: :meth:`RegistrationModel.describe`).

    The folder is complete or as it was: the files are staged and moved in once all are written
    (:func:`innreg.atomic.staged_dir`; the grids last), and the files of an earlier registration in
    ``out_dir`` that this one does not write (its ``warped_seg.nii.gz``) are removed; other files are kept.

    Raises:
        InnregInputError: one of the record's files is a registration file in ``out_dir`` (it would be
            overwritten), or the inputs are bad.
    """
    from innreg.atomic import check_folder_spares_inputs, staged_dir
    from innreg.data import load_masks, load_pair
    from innreg.warping import FIXED_GRID, MOVING_GRID, REGISTRATION_FILES

    out_dir = Path(out_dir)
    check_folder_spares_inputs(out_dir, REGISTRATION_FILES, record.files())
    loaded = load_pair(record)
    moving, fixed, moving_seg, _ = loaded
    moving_mask, fixed_mask = load_masks(record, fixed)
    with about_file(record.moving):
        result = model.register(
            moving.array, fixed.array, None if moving_seg is None else moving_seg.array, fixed_mask, moving_mask,
            spacing=voxel_spacing(fixed), on_phase=on_phase,
        )
    if on_phase is not None:
        on_phase("write outputs")
    with staged_dir(out_dir, owned=REGISTRATION_FILES, last=(FIXED_GRID, MOVING_GRID)) as staging:
        _write_outputs(model, record, result, loaded, fixed_mask, staging)
    return result


def _write_outputs(
    model: RegistrationModel, record, result: RegistrationResult, loaded: tuple, fixed_mask, out_dir: Path
) -> None:
    """The files of :func:`write_registration`, written into ``out_dir`` (its staging folder); ``loaded``:
    :func:`~innreg.data.load_pair`'s images of ``record``."""
    from innreg.atomic import write_text
    from innreg.data import load_image, save_field, save_image, save_itk_field
    from innreg.metrics import jacobian_determinant, neg_jacobian_fraction
    from innreg.reports import registration_overview
    from innreg.warping import save_grids

    moving, fixed, moving_seg, fixed_seg = loaded
    save_image(out_dir / "warped.nii.gz", result.warped, fixed, dtype=np.float32)
    # In the fixed image's units (HU for CT: a synthetic CT), so a viewer, and the overview, show it in the
    # fixed image's window.
    translated = model.in_fixed_units(result.translated, fixed.array, fixed_mask)
    save_image(out_dir / "translated.nii.gz", translated, fixed, dtype=np.float32)
    save_field(out_dir / "ddf.nii.gz", result.ddf, fixed)
    save_field(out_dir / "inverse_ddf.nii.gz", result.inverse_ddf, fixed)
    save_itk_field(out_dir / "ddf_itk.nii.gz", result.ddf, fixed)
    save_itk_field(out_dir / "inverse_ddf_itk.nii.gz", result.inverse_ddf, fixed)
    # load_pair returned the moving image resampled onto the fixed grid; apply needs its own grid
    save_grids(out_dir, fixed, load_image(record.moving))
    if result.warped_seg is not None:
        save_image(out_dir / "warped_seg.nii.gz", result.warped_seg, fixed)  # the smallest integer type
    jac = jacobian_determinant(torch.from_numpy(result.ddf)[None])[0].numpy()
    registration_overview(
        out_dir / "overview.png", moving.array, fixed.array, translated, result.warped, result.ddf,
        jacobian=jac, moving_seg=None if moving_seg is None else moving_seg.array,
        fixed_seg=None if fixed_seg is None else fixed_seg.array, warped_seg=result.warped_seg,
    )
    record_json = {
        "moving": str(record.moving),
        "fixed": str(record.fixed),
        "moving_seg": None if record.moving_seg is None else str(record.moving_seg),
        "seconds": result.seconds,
        "phase_seconds": result.phase_seconds,
        "neg_jacobian_fraction": neg_jacobian_fraction(result.ddf),
        "run": model.describe(),
    }
    write_text(out_dir / "registration.json", json.dumps(record_json, indent=2) + "\n")
