"""Simulated multi-modal brain phantom built from the ICBM152 2009 template shipped with nilearn.

Anatomy: the 1 mm skull-stripped ICBM152 2009 T1 template and its grey-matter (GM), white-matter
(WM) and brain-mask probability maps (``nilearn.datasets.load_mni152_*``; they ship inside nilearn,
nothing is downloaded). CSF probability = brain mask minus GM and WM. Each pair gets its own
"subject" by a mild random deformation of the template anatomy.

Labels: 0 background (brain mask < 0.5), 1 CSF, 2 GM, 3 WM (argmax of the tissue probabilities).

Contrasts (all values ~[0, 1]):

* ``t1``: the real template T1 (WM > GM > CSF), with a random gain and gamma per case.
* ``t2``, ``pd``, ``flair``: partial-volume mixtures of tissue intensities from the spin-echo /
  inversion-recovery signal equations with the BrainWeb 1.5 T tissue parameters (T1/T2 in ms, PD):
  CSF 2569/329/1.0, GM 833/83/0.86, WM 500/70/0.77, times an approximate incidental
  magnetisation-transfer factor of multi-slice turbo spin echo (CSF 1, GM 0.93, WM 0.85).
  T2 (TR 5000, TE 100): CSF > GM > WM; PD (TR 6000, TE 15): CSF > GM > WM, flatter;
  FLAIR (TR 9000, TE 120, TI nulling CSF): GM > WM > CSF (CSF dark).
* ``ct``: Hounsfield units CSF 8, GM 38, WM 27 shown in the brain window (level 40, width 80),
  so GM > WM > CSF with low contrast. The template has no skull or scalp, so neither does the CT:
  everything outside the brain mask is air (the window floor, 0).

Synthetic contrasts mix the tissue intensities by partial-volume fractions: the template's tissue
probabilities squared and renormalised, because an average of 152 brains has blurrier tissue
borders than one subject. Per case: tissue intensities jittered by a few percent, then (after deformation, i.e. in the
frame of the acquired image) a slight Gaussian blur, a smooth multiplicative bias field (MR only)
and Rician noise (MR) or Gaussian noise in HU (CT).

Pairs and ground truth: both images come from the same subject and slice. The fixed image is the
subject deformed by :func:`~innreg.data.deformations.random_deformation`; the moving image is the
undeformed subject. The stored field ``ddf`` is therefore exactly the registration answer, on the
fixed grid in the :mod:`innreg.nn.warp` convention: ``warp(moving_seg, ddf, 'nearest') == fixed_seg``
and, before blur/bias/noise, ``warp(moving, ddf) == fixed`` when both have the same contrast.

2D slices are resampled to the target size with square pixels, the brain centred and fitted,
rows running anterior -> posterior (axial) or superior -> inferior (coronal, sagittal) and columns
patient left -> right (axial, coronal) or anterior -> posterior (sagittal), so ``imshow(array)``
shows anterior (or superior) up. 3D volumes keep the template's RAS axis order with isotropic voxels.
The affine of every image records this geometry in mm.
"""

from __future__ import annotations

import contextlib
import csv
import functools
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage

from innreg.data.deformations import DeformationParams, RngLike, apply_deformation, as_rng, random_deformation
from innreg.data.io import Image, save_field, save_image
from innreg.atomic import atomic_output
from innreg.errors import InnregInputError


class Modality(str, Enum):
    """Simulated contrasts."""

    T1 = "t1"
    T2 = "t2"
    PD = "pd"
    FLAIR = "flair"
    CT = "ct"


class SliceAxis(str, Enum):
    """Orientation of 2D phantom slices."""

    AXIAL = "axial"
    CORONAL = "coronal"
    SAGITTAL = "sagittal"


PHANTOM_MODALITIES: tuple[str, ...] = tuple(m.value for m in Modality)

# BrainWeb 1.5 T tissue parameters (T1 ms, T2 ms, relative proton density) for CSF, GM, WM.
_TISSUE_T1 = np.array([2569.0, 833.0, 500.0])
_TISSUE_T2 = np.array([329.0, 83.0, 70.0])
_TISSUE_PD = np.array([1.0, 0.86, 0.77])
_CT_HU = np.array([8.0, 38.0, 27.0])
_CT_WINDOW = (40.0, 80.0)  # level, width
_CT_NOISE_HU = 3.0
# Incidental magnetisation transfer of multi-slice turbo spin echo lowers WM (and less GM) signal
# (Dixon et al., Radiology 1990); approximate signal factors for CSF, GM, WM.
_TSE_MT_FACTOR = np.array([1.0, 0.93, 0.85])


def _spin_echo(tr: float, te: float) -> np.ndarray:
    return _TSE_MT_FACTOR * _TISSUE_PD * (1 - np.exp(-tr / _TISSUE_T1)) * np.exp(-te / _TISSUE_T2)


def _flair(tr: float, te: float) -> np.ndarray:
    # Inversion time that nulls CSF: 1 - 2 exp(-TI/T1) + exp(-TR/T1) = 0.
    ti = -_TISSUE_T1[0] * np.log((1 + np.exp(-tr / _TISSUE_T1[0])) / 2)
    mz = np.abs(1 - 2 * np.exp(-ti / _TISSUE_T1) + np.exp(-tr / _TISSUE_T1))
    return _TSE_MT_FACTOR * _TISSUE_PD * mz * np.exp(-te / _TISSUE_T2)


def _normalised(values: np.ndarray) -> tuple[float, float, float]:
    return tuple(float(v) for v in values / values.max())


# Mean intensity of (CSF, GM, WM) in each synthetic contrast (t1 uses the real template instead).
TISSUE_INTENSITY: dict[Modality, tuple[float, float, float]] = {
    Modality.T2: _normalised(_spin_echo(tr=5000.0, te=100.0)),
    Modality.PD: _normalised(_spin_echo(tr=6000.0, te=15.0)),
    Modality.FLAIR: _normalised(_flair(tr=9000.0, te=120.0)),
    Modality.CT: tuple(float(v) for v in (_CT_HU - (_CT_WINDOW[0] - _CT_WINDOW[1] / 2)) / _CT_WINDOW[1]),
}

# Subject-to-subject variation applied to the template anatomy (shared by both images of a pair).
ANATOMY_VARIATION = DeformationParams(
    rotation_deg=4.0, scale=(0.94, 1.06), shear=0.03, translation=0.02, elastic_magnitude_vox=2.0
)


@dataclass
class ContrastParams:
    """Per-case appearance randomisation.

    Attributes:
        jitter: relative jitter of each tissue intensity (and of the T1 gain and gamma), uniform in ``[-j, j]``.
        bias: coefficient range of the quadratic log-bias field (MR), ``exp`` of a polynomial in
            coordinates normalised to ``[-1, 1]``.
        noise: ``(low, high)`` range of the noise level relative to the brightest tissue (MR, Rician);
            CT noise is Gaussian, ``3 HU`` at the same relative level as ``0.03``.
        blur_vox: Gaussian blur sigma in voxels (scanner point-spread function).
    """

    jitter: float = 0.04
    bias: float = 0.15
    noise: tuple[float, float] = (0.01, 0.03)
    blur_vox: float = 0.5


NO_CONTRAST_VARIATION = ContrastParams(jitter=0.0, bias=0.0, noise=(0.0, 0.0), blur_vox=0.0)


@dataclass
class PhantomPair:
    """One simulated pair on a common grid.

    Attributes:
        moving: float32 ``S`` moving image (the undeformed subject, ``moving_modality``).
        fixed: float32 ``S`` fixed image (the deformed subject, ``fixed_modality``).
        moving_seg: int64 ``S`` labels of ``moving`` (0 bg, 1 CSF, 2 GM, 3 WM).
        fixed_seg: int64 ``S`` labels of ``fixed`` (``warp(moving_seg, ddf, 'nearest')``).
        ddf: float32 ``(dim, *S)`` true registration field, pull-back, voxels, on the fixed grid.
        affine: 4x4 voxel-to-world (mm) matrix shared by both images.
        moving_modality, fixed_modality: contrast names.
    """

    moving: np.ndarray
    fixed: np.ndarray
    moving_seg: np.ndarray
    fixed_seg: np.ndarray
    ddf: np.ndarray
    affine: np.ndarray
    moving_modality: str
    fixed_modality: str
    spacing: tuple[float, ...] = field(init=False)

    def __post_init__(self) -> None:
        dim = self.moving.ndim
        self.spacing = tuple(float(v) for v in np.linalg.norm(self.affine[:3, :dim], axis=0))


@dataclass(frozen=True)
class _Template:
    """Template channels (T1, GM, WM, mask) cropped to the brain, and their geometry."""

    channels: np.ndarray  # float32 (4, X, Y, Z)
    affine: np.ndarray  # voxel -> world (mm)
    brain_lo: np.ndarray  # world bounding box of the brain mask (mm)
    brain_hi: np.ndarray


@functools.cache
def _template() -> _Template:
    """Load the ICBM152 2009 template and tissue maps once per process."""
    from nilearn import datasets

    t1_img = datasets.load_mni152_template(resolution=1)
    maps = [
        t1_img,
        datasets.load_mni152_gm_template(resolution=1),
        datasets.load_mni152_wm_template(resolution=1),
        datasets.load_mni152_brain_mask(resolution=1),
    ]
    channels = np.stack([m.get_fdata(dtype=np.float32) for m in maps])
    mask = channels[3] > 0.5
    idx = np.argwhere(mask)
    lo, hi = idx.min(0), idx.max(0)
    margin = 4
    start = np.maximum(lo - margin, 0)
    stop = np.minimum(hi + margin + 1, mask.shape)
    crop = tuple(slice(a, b) for a, b in zip(start, stop))
    channels = np.ascontiguousarray(channels[(slice(None), *crop)])
    channels[0] *= channels[3] > 0.5  # the T1 template is skull-stripped; drop residual values outside
    affine = np.asarray(t1_img.affine, dtype=np.float64)
    corners = affine[:3, :3] @ np.stack([lo, hi], axis=1) + affine[:3, 3:]  # world (mm), RAS template
    cropped = affine.copy()
    cropped[:3, 3] += affine[:3, :3] @ start
    return _Template(channels, cropped, corners.min(axis=1), corners.max(axis=1))


# In-plane layout of 2D slices: (normal world axis, (row world axis, sign), (column world axis, sign)).
_SLICE_LAYOUT = {
    SliceAxis.AXIAL: (2, (1, -1.0), (0, 1.0)),
    SliceAxis.CORONAL: (1, (2, -1.0), (0, 1.0)),
    SliceAxis.SAGITTAL: (0, (2, -1.0), (1, -1.0)),
}
_FIELD_OF_VIEW_MARGIN = 1.15  # grid extent relative to the brain's bounding box


def _grid_affine(
    size: Sequence[int], axis: SliceAxis, slice_fraction: float, template: _Template
) -> np.ndarray:
    """Voxel-to-world affine of a target grid that fits the brain with square/cubic voxels."""
    extent = (template.brain_hi - template.brain_lo) * _FIELD_OF_VIEW_MARGIN
    centre = (template.brain_hi + template.brain_lo) / 2
    if len(size) == 2:
        normal, (row_ax, row_sign), (col_ax, col_sign) = _SLICE_LAYOUT[axis]
        directions = np.zeros((3, 3))
        directions[row_ax, 0], directions[col_ax, 1], directions[normal, 2] = row_sign, col_sign, 1.0
        spacing = max(extent[row_ax] / size[0], extent[col_ax] / size[1])
        centre = centre.copy()
        centre[normal] = template.brain_lo[normal] + slice_fraction * (template.brain_hi - template.brain_lo)[normal]
        half = np.array([(size[0] - 1) / 2, (size[1] - 1) / 2, 0.0])
    else:
        directions = np.eye(3)
        spacing = max(extent[k] / size[k] for k in range(3))
        half = (np.asarray(size, dtype=np.float64) - 1) / 2
    affine = np.eye(4)
    affine[:3, :3] = directions * spacing
    affine[:3, 3] = centre - affine[:3, :3] @ half
    return affine


def _sample_template(size: Sequence[int], affine: np.ndarray, template: _Template) -> np.ndarray:
    """Trilinear samples of the template channels on the target grid: float32 ``(4, *size)``."""
    to_template = np.linalg.solve(template.affine, affine)
    dim = len(size)
    grid = np.stack(np.meshgrid(*[np.arange(s, dtype=np.float64) for s in size], indexing="ij"))
    coords = np.einsum("ij,j...->i...", to_template[:3, :dim], grid) + to_template[:3, 3].reshape(3, *([1] * dim))
    return np.stack(
        [ndimage.map_coordinates(c, coords, order=1, mode="constant", cval=0.0) for c in template.channels]
    ).astype(np.float32)


def _tissue_probabilities(gm: np.ndarray, wm: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``(3, *S)`` CSF, GM, WM probabilities; CSF is the brain mask minus GM and WM."""
    mask = np.clip(mask, 0.0, 1.0)
    gm, wm = np.minimum(np.clip(gm, 0, 1), mask), np.minimum(np.clip(wm, 0, 1), mask)
    csf = np.clip(mask - gm - wm, 0.0, 1.0)
    return np.stack([csf, gm, wm])


def _sharpened(probabilities: np.ndarray, power: float = 2.0) -> np.ndarray:
    """Partial-volume fractions of one subject from the probabilities of an average template.

    The ICBM152 maps average 152 brains, so tissue borders are much wider than one subject's
    partial-volume zone; raising to ``power`` and renormalising (same total, the brain mask) narrows them.
    """
    raised = probabilities**power
    total = raised.sum(0)
    return np.where(total > 0, raised * (probabilities.sum(0) / np.maximum(total, 1e-12)), 0.0)


def _labels(probabilities: np.ndarray, mask: np.ndarray) -> np.ndarray:
    return np.where(mask >= 0.5, probabilities.argmax(0) + 1, 0).astype(np.int64)


def _clean_contrast(modality: Modality, t1: np.ndarray, probabilities: np.ndarray, jitter: float, rng) -> np.ndarray:
    """Noise-free image of one contrast on the subject's anatomy."""
    if modality == Modality.T1:
        gain, gamma = 1 + rng.uniform(-jitter, jitter, 2)
        return (gain * np.clip(t1, 0, None) ** gamma).astype(np.float32)
    means = np.asarray(TISSUE_INTENSITY[modality]) * (1 + rng.uniform(-jitter, jitter, 3))
    return np.einsum("t,t...->...", means, _sharpened(probabilities)).astype(np.float32)


def _bias_field(shape: Sequence[int], amplitude: float, rng) -> np.ndarray:
    """``exp`` of a random polynomial of degree 2 in coordinates normalised to [-1, 1]."""
    coords = np.meshgrid(*[np.linspace(-1, 1, s) for s in shape], indexing="ij")
    terms = list(coords) + [a * b for i, a in enumerate(coords) for b in coords[i:]]
    log_bias = sum(c * t for c, t in zip(rng.uniform(-amplitude, amplitude, len(terms)), terms))
    return np.exp(log_bias).astype(np.float32)


def _acquire(modality: Modality, clean: np.ndarray, contrast: ContrastParams, rng) -> np.ndarray:
    """Blur, bias field and noise of the scanner, in the frame of the acquired image."""
    image = ndimage.gaussian_filter(clean, contrast.blur_vox) if contrast.blur_vox > 0 else clean.copy()
    sigma = rng.uniform(*contrast.noise)
    if modality == Modality.CT:
        # noise in HU, then the brain window clips to [0, 1]
        image = image + rng.standard_normal(image.shape) * sigma / 0.03 * _CT_NOISE_HU / _CT_WINDOW[1]
        return np.clip(image, 0.0, 1.0).astype(np.float32)
    if contrast.bias > 0:
        image = image * _bias_field(image.shape, contrast.bias, rng)
    # Rician: magnitude of a complex signal with Gaussian noise in both channels.
    real = image + sigma * rng.standard_normal(image.shape)
    imag = sigma * rng.standard_normal(image.shape)
    return np.sqrt(real**2 + imag**2).astype(np.float32)


def _check_size(dim: int, size: Sequence[int]) -> tuple[int, ...]:
    if dim not in (2, 3):
        raise InnregInputError(f"dim={dim}: phantoms are 2D or 3D")
    size = tuple(int(s) for s in size)
    if len(size) != dim or min(size) < 8:
        raise InnregInputError(f"size={size}: need {dim} sizes of at least 8 voxels for dim={dim}")
    return size


def _modality(name: str, role: str) -> Modality:
    try:
        return Modality(str(name).lower())
    except ValueError:
        choices = ", ".join(PHANTOM_MODALITIES)
        raise InnregInputError(f"{role}={name!r}: unknown modality, choose from {choices}") from None


def make_phantom_pair(
    moving: str = "t2",
    fixed: str = "t1",
    dim: int = 2,
    size: Sequence[int] = (192, 160),
    rng: RngLike = None,
    deformation: DeformationParams | None = None,
    axis: str = "axial",
    slice_range: tuple[float, float] = (0.45, 0.75),
    anatomy: DeformationParams | None = ANATOMY_VARIATION,
    contrast: ContrastParams | None = None,
) -> PhantomPair:
    """Simulate one registration pair (see the module docstring for the model).

    Args:
        moving: modality of the moving image (one of :data:`PHANTOM_MODALITIES`).
        fixed: modality of the fixed image.
        dim: 2 (slices) or 3 (volumes).
        size: grid shape, ``(H, W)`` or ``(X, Y, Z)``.
        rng: numpy Generator or seed.
        deformation: ranges of the pair's misalignment (default :class:`DeformationParams`).
        axis: 2D slice orientation: ``axial``, ``coronal`` or ``sagittal``.
        slice_range: fractions of the brain's extent along the slice normal between which the 2D
            slice position is drawn (default: from the lateral ventricles to the upper cortex for axial).
        anatomy: subject variation applied to the template before anything else (``None``: the template).
        contrast: appearance randomisation (default :class:`ContrastParams`).

    Returns:
        A :class:`PhantomPair`.
    """
    moving_mod, fixed_mod = _modality(moving, "moving"), _modality(fixed, "fixed")
    size = _check_size(dim, size)
    axis = SliceAxis(axis)
    if not 0.0 <= slice_range[0] <= slice_range[1] <= 1.0:
        raise InnregInputError(f"slice_range={slice_range}: need 0 <= low <= high <= 1")
    rng = as_rng(rng)
    contrast = contrast or ContrastParams()
    template = _template()

    affine = _grid_affine(size, axis, rng.uniform(*slice_range), template)
    channels = _sample_template(size, affine, template)
    if anatomy is not None:
        subject = random_deformation(size, anatomy, rng)
        channels = apply_deformation(torch.from_numpy(channels), None, subject)[0].numpy()
    t1, gm, wm, mask = channels
    probabilities = _tissue_probabilities(gm, wm, mask)
    moving_seg = _labels(probabilities, mask)

    moving_clean = _clean_contrast(moving_mod, t1, probabilities, contrast.jitter, rng)
    fixed_clean = _clean_contrast(fixed_mod, t1, probabilities, contrast.jitter, rng)
    ddf = random_deformation(size, deformation, rng)
    fixed_clean, fixed_seg = apply_deformation(
        torch.from_numpy(fixed_clean)[None], torch.from_numpy(moving_seg)[None], ddf
    )
    return PhantomPair(
        moving=_acquire(moving_mod, moving_clean, contrast, rng),
        fixed=_acquire(fixed_mod, fixed_clean[0].numpy(), contrast, rng),
        moving_seg=moving_seg,
        fixed_seg=fixed_seg[0].numpy(),
        ddf=ddf.numpy(),
        affine=affine,
        moving_modality=moving_mod.value,
        fixed_modality=fixed_mod.value,
    )


MANIFEST_COLUMNS = ("moving", "fixed", "moving_seg", "fixed_seg", "true_ddf")


def _write_pair(pair: PhantomPair, folder: Path, stem: str) -> dict[str, str]:
    """Write the five files of a pair; return the manifest row (paths relative to the dataset root)."""
    reference = Image(pair.fixed, pair.affine)
    rel = {key: f"images/{stem}_{key}.nii.gz" for key in MANIFEST_COLUMNS}
    images = (("moving", pair.moving, pair.moving_modality), ("fixed", pair.fixed, pair.fixed_modality))
    for role, image, modality in images:
        save_image(folder / rel[role], image, reference, description=f"innreg phantom {modality} ({role})")
    labels = "innreg phantom labels 0 bg 1 CSF 2 GM 3 WM"
    save_image(folder / rel["moving_seg"], pair.moving_seg, reference, dtype=np.uint8, description=labels)
    save_image(folder / rel["fixed_seg"], pair.fixed_seg, reference, dtype=np.uint8, description=labels)
    save_field(folder / rel["true_ddf"], pair.ddf, reference)
    return rel


def _write_manifest(path: Path, rows: list[dict[str, str]]) -> None:
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(MANIFEST_COLUMNS))
        writer.writeheader()
        writer.writerows(rows)


def _display(array: np.ndarray) -> np.ndarray:
    """2D view with anterior (or superior) up: 2D phantoms as stored, 3D: the mid axial slice."""
    if array.ndim == 2:
        return array
    return array[:, :, array.shape[2] // 2].T[::-1]


def _display_grid(ddf: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Display (row, column) positions in the moving image of the fixed grid points, ``x + ddf(x)``."""
    if ddf.shape[0] == 2:
        rows, cols = np.meshgrid(*[np.arange(s, dtype=np.float64) for s in ddf.shape[1:]], indexing="ij")
        return rows + ddf[0], cols + ddf[1]
    x_size, y_size, z_size = ddf.shape[1:]
    x, y = np.meshgrid(np.arange(x_size, dtype=np.float64), np.arange(y_size, dtype=np.float64), indexing="ij")
    k = z_size // 2
    px, py = x + ddf[0, :, :, k], y + ddf[1, :, :, k]
    # same view as _display: rows = flipped y, columns = x
    return (y_size - 1 - py).T[::-1], px.T[::-1]


def save_contact_sheet(pairs: Sequence[PhantomPair], path: str | os.PathLike, grid_step: int = 12) -> Path:
    """PNG overview: per pair the moving and fixed images with label outlines, and the true field.

    The third column shows the moving image with the fixed grid mapped through the true field
    (``x + ddf(x)``), i.e. where each fixed-image grid line is sampled from.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    n = len(pairs)
    fig, axes = plt.subplots(n, 3, figsize=(7.5, 2.9 * n), squeeze=False)
    outline = dict(levels=[0.5, 1.5, 2.5], colors=["#4fc3f7", "#ffd54f", "#ef5350"], linewidths=0.6)
    for row, pair in zip(axes, pairs):
        panels = (
            (pair.moving, pair.moving_seg, f"moving ({pair.moving_modality})"),
            (pair.fixed, pair.fixed_seg, f"fixed ({pair.fixed_modality})"),
            (pair.moving, None, "true field on moving"),
        )
        for ax, (image, seg, title) in zip(row, panels):
            ax.imshow(_display(image), cmap="gray", vmin=0, vmax=float(np.percentile(image, 99.5)))
            if seg is not None:
                ax.contour(_display(seg), **outline)
            ax.set_title(title, fontsize=8)
            ax.set_axis_off()
        grid_rows, grid_cols = _display_grid(pair.ddf)
        for k in range(0, grid_rows.shape[0], grid_step):
            row[2].plot(grid_cols[k], grid_rows[k], color="#ffeb3b", lw=0.4)
        for k in range(0, grid_rows.shape[1], grid_step):
            row[2].plot(grid_cols[:, k], grid_rows[:, k], color="#ffeb3b", lw=0.4)
        height, width = grid_rows.shape
        row[2].set_xlim(-0.5, width - 0.5)
        row[2].set_ylim(height - 0.5, -0.5)
    fig.suptitle("innreg phantom pairs; label boundaries: brain (blue), CSF/GM (yellow), GM/WM (red)", fontsize=9)
    fig.tight_layout()
    try:
        with atomic_output(path, ".png") as tmp:
            fig.savefig(tmp, dpi=110)
    finally:
        plt.close(fig)
    return path


@contextlib.contextmanager
def _single_torch_thread():
    """Run torch single-threaded: the per-pair tensors are small, so thread start-up only costs time."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _prepare_destination(out_dir: Path, overwrite: bool) -> None:
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())) and not overwrite:
        raise InnregInputError(f"{out_dir}: already exists and is not empty; remove it or pass overwrite=True")


def _move_into_place(tmp_dir: Path, out_dir: Path) -> None:
    """Rename the finished temporary folder to ``out_dir`` (replacing an old one only at the very end)."""
    old = None
    if out_dir.exists():
        old = out_dir.with_name(f".{out_dir.name}.old-{os.getpid()}")
        os.replace(out_dir, old)
    os.replace(tmp_dir, out_dir)
    if old is not None:
        shutil.rmtree(old) if old.is_dir() else old.unlink()


def generate_phantom_dataset(
    out_dir: str | os.PathLike,
    moving: str = "t2",
    fixed: str = "t1",
    n: int = 200,
    dim: int = 2,
    size: Sequence[int] = (192, 160),
    seed: int = 0,
    test_fraction: float = 0.2,
    axis: str = "axial",
    progress: bool = True,
    deformation: DeformationParams | None = None,
    overwrite: bool = False,
    contact_sheet_pairs: int = 4,
) -> dict[str, Path]:
    """Write a phantom data set: NIfTI files, ``train.csv``/``test.csv`` and ``contact_sheet.png``.

    Layout of ``out_dir``: ``images/pair_NNNN_{moving,fixed,moving_seg,fixed_seg,true_ddf}.nii.gz``;
    the manifests have the columns ``moving,fixed,moving_seg,fixed_seg,true_ddf`` with paths relative
    to ``out_dir`` (training needs only the first two). Pair ``i`` is drawn from
    ``numpy.random.default_rng([seed, i])``, so it does not depend on ``n``. The last
    ``round(n * test_fraction)`` pairs form the test split. Everything is written into a temporary
    folder beside ``out_dir`` that is renamed to ``out_dir`` at the end, so an interrupted run leaves
    no half-written data set.

    Args:
        out_dir: destination folder (must not exist or be empty, unless ``overwrite``).
        moving, fixed: modalities (see :data:`PHANTOM_MODALITIES`).
        n: number of pairs.
        dim: 2 or 3.
        size: grid shape, 2 or 3 values.
        seed: random seed.
        test_fraction: share of pairs in ``test.csv``.
        axis: 2D slice orientation.
        progress: show a tqdm progress bar.
        deformation: misalignment ranges (default :class:`DeformationParams`).
        overwrite: replace an existing non-empty ``out_dir``.
        contact_sheet_pairs: pairs shown in the contact sheet.

    Returns:
        ``{"train": train.csv, "test": test.csv, "contact_sheet": contact_sheet.png}`` paths.
    """
    from tqdm.auto import tqdm

    out_dir = Path(out_dir)
    _modality(moving, "moving"), _modality(fixed, "fixed")
    size = _check_size(dim, size)
    if n < 2:
        raise InnregInputError(f"n={n}: need at least 2 pairs (one for training, one for testing)")
    if not 0.0 < test_fraction < 1.0:
        raise InnregInputError(f"test_fraction={test_fraction}: must be between 0 and 1")
    _prepare_destination(out_dir, overwrite)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    n_test = min(max(1, round(n * test_fraction)), n - 1)

    tmp_dir = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    try:
        (tmp_dir / "images").mkdir()
        rows, shown = [], []
        with _single_torch_thread():
            for i in tqdm(range(n), desc="phantom pairs", unit="pair", disable=not progress):
                pair = make_phantom_pair(
                    moving, fixed, dim, size, np.random.default_rng([seed, i]), deformation, axis=axis
                )
                rows.append(_write_pair(pair, tmp_dir, f"pair_{i:04d}"))
                if len(shown) < contact_sheet_pairs:
                    shown.append(pair)
        save_contact_sheet(shown, tmp_dir / "contact_sheet.png")
        _write_manifest(tmp_dir / "train.csv", rows[: n - n_test])
        _write_manifest(tmp_dir / "test.csv", rows[n - n_test :])
        _move_into_place(tmp_dir, out_dir)
    except BaseException:
        shutil.rmtree(tmp_dir, ignore_errors=True)
        raise
    return {name: out_dir / file for name, file in
            (("train", "train.csv"), ("test", "test.csv"), ("contact_sheet", "contact_sheet.png"))}
