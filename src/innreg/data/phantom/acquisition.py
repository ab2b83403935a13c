"""Acquisition effects, drawn per image: thick slices, anisotropic resolution, Gibbs ringing, scanner
blur, intensity non-uniformity, Rician noise and field-of-view cut-offs.

Order, as on a scanner followed by a user's resampling: partial-volume averaging over the slice
thickness (2D slices: through the plane, see :func:`through_plane_weights`; 3D: along a random grid
axis, then linearly resampled to the grid, :func:`thick_slices`), a lower resolution along one
in-plane (phase-encoding) axis by k-space truncation, with ringing (sharp cut) or without (Hann
apodisation), a small Gaussian point-spread blur, a smooth multiplicative bias field (MR), noise
(Rician for MR at a signal-to-noise ratio relative to the mean brain signal; Gaussian in HU for CT),
and a band at one border outside the field of view (zeros).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from innreg.data.intensity import bias_field, random_bias_coefficients
from innreg.data.phantom.contrast import Modality, is_ct


@dataclass
class ContrastParams:
    """Ranges of the per-image appearance and acquisition randomisation (uniform draws).

    Attributes:
        jitter: relative jitter of each tissue intensity (twice that outside the brain) and of the
            T1 gain and gamma.
        bias: coefficient range of the quadratic log-bias field (MR).
        snr: MR signal-to-noise ratio range (mean brain signal / noise sigma), ``None``: no noise.
        ct_noise_hu: CT noise sigma range in HU, ``None``: no noise.
        blur_vox: Gaussian point-spread sigma in voxels.
        slice_thickness_mm: slice thickness range, ``None``: thin slices.
        inplane_resolution: range of the acquired voxel size along one in-plane axis relative to
            the grid spacing, ``None``: full resolution.
        gibbs_probability: chance that the k-space truncation is sharp (ringing) rather than apodised.
        fov_cut_probability: chance of a band outside the field of view at one border.
        fov_cut_mm: largest width (mm) that a cut reaches into the head, beyond the grid margin.
    """

    jitter: float = 0.05
    bias: float = 0.3
    snr: tuple[float, float] | None = (10.0, 35.0)
    ct_noise_hu: tuple[float, float] | None = (3.0, 8.0)
    blur_vox: float = 0.5
    slice_thickness_mm: tuple[float, float] | None = (1.0, 5.0)
    inplane_resolution: tuple[float, float] | None = (1.0, 1.6)
    gibbs_probability: float = 0.3
    fov_cut_probability: float = 0.3
    fov_cut_mm: float = 12.0


# The original brain-only phantom's appearance (mild blur, bias and noise, thin slices).
SKULL_STRIPPED_CONTRAST = ContrastParams(
    jitter=0.04, bias=0.15, snr=(33.0, 100.0), ct_noise_hu=(1.0, 3.0), slice_thickness_mm=None,
    inplane_resolution=None, gibbs_probability=0.0, fov_cut_probability=0.0,
)
NO_CONTRAST_VARIATION = ContrastParams(
    jitter=0.0, bias=0.0, snr=None, ct_noise_hu=None, blur_vox=0.0, slice_thickness_mm=None,
    inplane_resolution=None, gibbs_probability=0.0, fov_cut_probability=0.0,
)


@dataclass
class Acquisition:
    """One image's drawn acquisition (see :func:`draw_acquisition`)."""

    thickness_mm: float
    slice_axis: int | None  # grid axis of the slices (3D); None: through the plane of a 2D grid
    thickness_vox: float
    slice_phase: float
    phase_axis: int
    resolution: float
    gibbs: bool
    blur_vox: float
    bias_coefficients: np.ndarray | None
    snr: float | None
    ct_noise_hu: float | None
    fov_cut: tuple[int, int, int] | None  # (axis, side 0 low / 1 high, width in voxels)


def _draw(rng: np.random.Generator, value_range: tuple[float, float] | None) -> float | None:
    return None if value_range is None else float(rng.uniform(*value_range))


def draw_acquisition(
    params: ContrastParams, modality: Modality, spacing: Sequence[float], margins_vox: Sequence[tuple[int, int]],
    rng: np.random.Generator,
) -> Acquisition:
    """Draw one image's acquisition.

    Args:
        params: the ranges.
        modality: the contrast (CT: no bias field, Gaussian noise).
        spacing: grid voxel size (mm) per axis.
        margins_vox: per axis, ``(low, high)`` voxels between the grid border and the head.
        rng: numpy Generator.
    """
    dim = len(spacing)
    thickness = _draw(rng, params.slice_thickness_mm) or 0.0
    slice_axis = int(rng.integers(dim)) if dim == 3 else None
    thickness_vox = thickness / spacing[slice_axis] if slice_axis is not None else 0.0
    phase = float(rng.uniform())
    in_plane = [k for k in range(dim) if k != slice_axis]
    phase_axis = int(in_plane[rng.integers(len(in_plane))])
    resolution = _draw(rng, params.inplane_resolution) or 1.0
    # No ringing for CT in HU (a CT has no k-space truncation; over its full range the ringing of bone and
    # air would reach 100 HU); the windowed CT keeps its draw.
    gibbs = bool(rng.uniform() < params.gibbs_probability) and modality != Modality.CT_HU
    bias = random_bias_coefficients(dim, params.bias, rng) if params.bias > 0 and not is_ct(modality) else None
    snr = _draw(rng, params.snr)
    ct_noise = _draw(rng, params.ct_noise_hu)
    fov_cut = None
    if rng.uniform() < params.fov_cut_probability:
        axis, side = int(rng.integers(dim)), int(rng.integers(2))
        width = margins_vox[axis][side] + rng.uniform(0.3, 1.0) * params.fov_cut_mm / spacing[axis]
        fov_cut = (axis, side, int(round(width)))
    return Acquisition(thickness, slice_axis, thickness_vox, phase, phase_axis, resolution, gibbs,
                       params.blur_vox, bias, snr, ct_noise, fov_cut)


def through_plane_weights(thickness_mm: float, offsets_mm: Sequence[float]) -> np.ndarray:
    """Weights of 1 mm sub-slices at ``offsets_mm`` averaged into one slice of the given thickness.

    Each sub-slice stands for ``[o - 0.5, o + 0.5]`` mm; its weight is its overlap with the slab
    ``[-t/2, t/2]`` (thickness <= 1 mm: the central sub-slice alone). Sums to 1.
    """
    half = max(thickness_mm, 1.0) / 2
    offsets = np.asarray(offsets_mm, dtype=np.float64)
    weights = np.clip(np.minimum(offsets + 0.5, half) - np.maximum(offsets - 0.5, -half), 0.0, None)
    return weights / weights.sum()


def thick_slices(image: np.ndarray, axis: int, thickness_vox: float, phase: float = 0.0) -> np.ndarray:
    """Average over slabs of ``thickness_vox`` along ``axis``, then resample linearly to the grid.

    Slab ``j`` covers ``[c_j - t/2, c_j + t/2]`` around centres ``c_j = (j - phase) t`` (voxel
    units; voxel ``k`` is the interval ``[k - 1/2, k + 1/2]``); the slab means are exact integrals of
    the piecewise-constant voxels. Only ``axis`` is touched: every line along another axis keeps its
    profile wherever the image is constant along ``axis``.
    """
    if thickness_vox <= 1.0:
        return image
    n, t = image.shape[axis], float(thickness_vox)
    lines = np.moveaxis(image, axis, 0).astype(np.float64)
    cumulative = np.concatenate([np.zeros((1, *lines.shape[1:])), np.cumsum(lines, axis=0)])

    def integral(pos: np.ndarray) -> np.ndarray:  # from -1/2 to pos, clipped to the image
        u = np.clip(pos + 0.5, 0.0, n)
        i0 = np.minimum(np.floor(u).astype(int), n - 1)
        w = (u - i0).reshape(-1, *([1] * (lines.ndim - 1)))
        return cumulative[i0] * (1 - w) + cumulative[i0 + 1] * w

    centres = (np.arange(int(np.ceil(n / t)) + 2) - phase) * t
    lo, hi = np.clip(centres - t / 2, -0.5, n - 0.5), np.clip(centres + t / 2, -0.5, n - 0.5)
    keep = hi > lo
    centres, lo, hi = centres[keep], lo[keep], hi[keep]
    means = (integral(hi) - integral(lo)) / (hi - lo).reshape(-1, *([1] * (lines.ndim - 1)))
    position = np.interp(np.arange(n, dtype=np.float64), centres, np.arange(len(centres), dtype=np.float64))
    j0 = np.minimum(np.floor(position).astype(int), len(centres) - 2) if len(centres) > 1 else np.zeros(n, int)
    w = (position - j0).reshape(-1, *([1] * (lines.ndim - 1)))
    resampled = means[j0] * (1 - w) + means[np.minimum(j0 + 1, len(centres) - 1)] * w
    return np.moveaxis(resampled, 0, axis).astype(image.dtype)


def k_space_resolution(image: np.ndarray, axis: int, factor: float, sharp: bool) -> np.ndarray:
    """Keep spatial frequencies up to ``0.5 / factor`` cycles per voxel along ``axis``.

    ``sharp``: a hard cut, which rings at edges (Gibbs); else a Hann window over the kept band.
    """
    n = image.shape[axis]
    spectrum = np.fft.rfft(image, axis=axis)
    freqs = np.fft.rfftfreq(n)
    cutoff = 0.5 / max(factor, 1.0)
    if sharp:
        window = (freqs <= cutoff).astype(np.float64)
    else:
        window = np.where(freqs < cutoff, 0.5 * (1 + np.cos(np.pi * freqs / cutoff)), 0.0)
    shape = [1] * image.ndim
    shape[axis] = len(freqs)
    return np.fft.irfft(spectrum * window.reshape(shape), n=n, axis=axis).astype(np.float32)


def resolve(image: np.ndarray, acquisition: Acquisition) -> np.ndarray:
    """The deterministic resolution effects: thick slices (3D), k-space resolution, point-spread blur."""
    out = image
    if acquisition.slice_axis is not None:
        out = thick_slices(out, acquisition.slice_axis, acquisition.thickness_vox, acquisition.slice_phase)
    if acquisition.resolution > 1.0 or acquisition.gibbs:
        out = k_space_resolution(out, acquisition.phase_axis, acquisition.resolution, acquisition.gibbs)
    if acquisition.blur_vox > 0:
        out = ndimage.gaussian_filter(out, acquisition.blur_vox)
    return out.astype(np.float32)


def corrupt(
    image: np.ndarray, acquisition: Acquisition, modality: Modality, level: float, rng: np.random.Generator
) -> np.ndarray:
    """Bias field and noise (MR: Rician, sigma = ``level / snr``; CT: Gaussian in HU). The caller stores
    the result through :func:`~innreg.data.phantom.contrast.stored_image` (CT's window or HU)."""
    if is_ct(modality):
        if acquisition.ct_noise_hu:
            image = image + rng.standard_normal(image.shape) * acquisition.ct_noise_hu / 80.0  # window width
        return image.astype(np.float32)
    if acquisition.bias_coefficients is not None:
        image = image * bias_field(image.shape, acquisition.bias_coefficients)
    if not acquisition.snr:
        return image.astype(np.float32)
    sigma = level / acquisition.snr
    # Rician: magnitude of a complex signal with Gaussian noise in both channels.
    real = image + sigma * rng.standard_normal(image.shape)
    imag = sigma * rng.standard_normal(image.shape)
    return np.sqrt(real**2 + imag**2).astype(np.float32)


def cut_field_of_view(image: np.ndarray, acquisition: Acquisition) -> np.ndarray:
    """Zero the band outside the field of view (if the acquisition has one)."""
    if acquisition.fov_cut is None:
        return image
    axis, side, width = acquisition.fov_cut
    out = image.copy()
    band = [slice(None)] * image.ndim
    band[axis] = slice(0, width) if side == 0 else slice(image.shape[axis] - width, None)
    out[tuple(band)] = 0
    return out

