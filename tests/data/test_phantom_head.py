"""Whole-head phantom: head classes, contrasts of every tissue, moving_as_fixed, acquisition effects, seeds."""

import numpy as np
import pytest
import torch
from scipy import ndimage

from innreg.data.phantom import (
    HEAD_INTENSITY,
    NO_CONTRAST_VARIATION,
    TISSUE_INTENSITY,
    HeadLabel,
    Modality,
    make_phantom_pair,
)
from innreg.data.phantom.acquisition import k_space_resolution, thick_slices, through_plane_weights
from innreg.core.warp import warp

HEAD_SIZE = (224, 192)  # about 1 mm pixels for a whole head


def run_lengths_mm(labels: np.ndarray, spacing: float, n_rays: int = 48) -> dict[int, float]:
    """Median over rays from the brain centre of the length (mm) of each head class crossed outwards."""
    centre = np.argwhere(labels == -1).mean(0) if (labels == -1).any() else np.array(labels.shape) / 2
    step = 0.25
    radii = np.arange(0, max(labels.shape), step)
    lengths: dict[int, list[float]] = {}
    for angle in np.linspace(0, 2 * np.pi, n_rays, endpoint=False):
        rows, cols = centre[0] + radii * np.sin(angle), centre[1] + radii * np.cos(angle)
        along = ndimage.map_coordinates(labels, [rows, cols], order=0, mode="constant", cval=0)
        for label in np.unique(along):
            if label > 0:
                lengths.setdefault(int(label), []).append((along == label).sum() * step * spacing)
    return {k: float(np.median(v)) for k, v in lengths.items()}


def test_shell_classes_present_with_plausible_thickness():
    pair = make_phantom_pair("t1", "t2", 2, HEAD_SIZE, rng=0)
    head = pair.moving_head_labels
    for label in (HeadLabel.OUTER_CSF, HeadLabel.BONE, HeadLabel.MARROW, HeadLabel.MUSCLE, HeadLabel.FAT,
                  HeadLabel.SKIN):
        assert (head == label).sum() > 50, label.name
    assert not ((head > 0) & (pair.moving_seg > 0)).any()  # head classes never overlap the brain labels
    rays = np.where(pair.moving_seg > 0, -1, head)
    thickness = run_lengths_mm(rays, pair.spacing[0])
    skull = run_lengths_mm(np.where(np.isin(head, (HeadLabel.BONE, HeadLabel.MARROW)), 9, rays), pair.spacing[0])[9]
    assert 0.5 <= thickness[HeadLabel.OUTER_CSF] <= 5.0, thickness
    assert 3.0 <= skull <= 12.0, skull
    assert 1.0 <= thickness[HeadLabel.FAT] <= 10.0 and 1.0 <= thickness[HeadLabel.SKIN] <= 4.5, thickness
    # a head, not a brain: a good share of the head lies outside the brain labels
    assert ((head > 0) & (pair.moving_seg == 0)).sum() / ((head > 0) | (pair.moving_seg > 0)).sum() > 0.15


def test_eyes_and_sinus_air_appear_low_in_the_head():
    pair = make_phantom_pair("t2", "t1", 2, HEAD_SIZE, rng=1, slice_range=(0.2, 0.22))  # through the orbits (z ~ -40 mm)
    head = pair.moving_head_labels
    assert (head == HeadLabel.EYE).sum() > 100
    low = make_phantom_pair("t2", "t1", 2, HEAD_SIZE, rng=1, axis="sagittal", slice_range=(0.5, 0.5))
    assert (low.moving_head_labels == HeadLabel.AIR).sum() > 50  # midline: sinuses and nasal cavity


def test_every_tissue_has_the_physical_contrast():
    mr = (Modality.T1, Modality.T2, Modality.PD, Modality.FLAIR)
    fat, bone, air = HEAD_INTENSITY[Modality.T1][HeadLabel.FAT], HeadLabel.BONE, HeadLabel.AIR
    for m in mr:
        table = HEAD_INTENSITY[m]
        assert table[bone] < 0.2 and table[air] == 0.0, m  # bone and air dark in MR
    assert HEAD_INTENSITY[Modality.CT][bone] > 1.0 and HEAD_INTENSITY[Modality.CT][air] < 0.0  # beyond the window
    assert fat > 1.0 and HEAD_INTENSITY[Modality.T2][HeadLabel.FAT] > TISSUE_INTENSITY[Modality.T2][1]  # fat bright
    # PD: weak grey/white contrast, below T2's
    t2, pd = TISSUE_INTENSITY[Modality.T2], TISSUE_INTENSITY[Modality.PD]
    assert 1.0 < pd[1] / pd[2] < t2[1] / t2[2]
    # and in simulated images (per-case jitter, partial volume, noise, bias): bone dark in MR, bright in CT
    for modality, brighter in (("t1", False), ("ct", True)):
        pair = make_phantom_pair(modality, modality, 2, HEAD_SIZE, rng=2)
        bone_mean = pair.moving[pair.moving_head_labels == HeadLabel.BONE].mean()
        brain_mean = pair.moving[pair.moving_seg > 0].mean()
        assert (bone_mean > brain_mean) == brighter, modality


def test_ct_in_hounsfield_units_is_the_windowed_ct_unwindowed():
    # The same case as CT in HU and in the brain window: air -1000 HU, fat between air and soft tissue
    # (black in the window), grey and white matter at their table values in HU and the same in both
    # (HU = 80 x the window's value, the window's level minus half its width being 0 HU).
    hu = make_phantom_pair("ct-hu", "t1", 2, HEAD_SIZE, rng=2)
    window = make_phantom_pair("ct", "t1", 2, HEAD_SIZE, rng=2)
    labels, seg = hu.moving_head_labels, hu.moving_seg

    def median(image, mask):
        return float(np.median(image[mask]))

    outside, fat = (labels == 0) & (seg == 0), labels == HeadLabel.FAT
    assert abs(median(hu.moving, outside) + 1000) < 5 and median(hu.moving, fat) < -50
    assert median(window.moving, fat) == 0.0  # fat is as black as air in the brain window
    for tissue, hu_value in ((2, 38.0), (3, 27.0)):  # GM, WM (jittered by at most 4 %)
        assert abs(median(hu.moving, seg == tissue) - hu_value) < 4
        assert abs(median(hu.moving, seg == tissue) - 80 * median(window.moving, seg == tissue)) < 2
    assert median(hu.moving, labels == HeadLabel.BONE) > 300
    np.testing.assert_array_equal(hu.fixed, window.fixed)  # the draws of the rest of the case are the same


@pytest.mark.parametrize("moving, fixed", [("pd", "t1"), ("t1", "ct")])
def test_moving_as_fixed_is_the_moving_anatomy_in_the_fixed_contrast(moving, fixed):
    pair = make_phantom_pair(moving, fixed, 2, HEAD_SIZE, rng=3, slice_range=(0.5, 0.6))
    means = {k: pair.moving_as_fixed[pair.moving_seg == k].mean() for k in (1, 2, 3)}  # on the MOVING labels
    fixed_means = {k: pair.fixed[pair.fixed_seg == k].mean() for k in (1, 2, 3)}
    order = sorted(means, key=means.get)
    assert order == sorted(fixed_means, key=fixed_means.get)  # the fixed contrast's tissue order
    for k in (1, 2, 3):
        assert means[k] == pytest.approx(fixed_means[k], rel=0.35)
    # without acquisition effects, warping it with the true field gives the fixed image exactly
    # (an MR fixed contrast: CT's window clips after warping, so it commutes only approximately)
    clean = make_phantom_pair(moving, "t2", 2, (64, 56), rng=4, contrast=NO_CONTRAST_VARIATION)
    ddf = torch.from_numpy(clean.ddf)[None]
    warped = warp(torch.from_numpy(clean.moving_as_fixed)[None, None], ddf)[0, 0].numpy()
    np.testing.assert_allclose(warped, clean.fixed, atol=1e-5)


def test_thick_slices_blur_only_along_the_slice_axis():
    rng = np.random.default_rng(0)
    across = np.repeat(rng.uniform(size=(1, 20, 12)), 16, axis=0)  # varies along axes 1, 2 only
    np.testing.assert_allclose(thick_slices(across, axis=0, thickness_vox=3.5, phase=0.3), across, atol=1e-6)
    along = np.repeat(np.repeat(rng.uniform(size=(40, 1, 1)), 6, axis=1), 5, axis=2)  # varies along axis 0
    thick = thick_slices(along, axis=0, thickness_vox=4.0, phase=0.0)
    assert np.abs(np.diff(thick, axis=0)).mean() < 0.5 * np.abs(np.diff(along, axis=0)).mean()
    np.testing.assert_allclose(thick, thick[:, :1, :1] * np.ones_like(along), atol=1e-6)  # still flat across
    assert thick.mean() == pytest.approx(along.mean(), abs=0.05)
    assert thick_slices(along, 0, 1.0) is along  # thin slices: nothing to average


def test_through_plane_weights_and_k_space_resolution():
    offsets = (-2.0, -1.0, 0.0, 1.0, 2.0)
    np.testing.assert_allclose(through_plane_weights(1.0, offsets), [0, 0, 1, 0, 0])
    np.testing.assert_allclose(through_plane_weights(5.0, offsets), [0.2] * 5)
    np.testing.assert_allclose(through_plane_weights(2.0, offsets), [0, 0.25, 0.5, 0.25, 0])
    edge = np.zeros((8, 64), np.float32)
    edge[:, 20:44] = 1.0
    ringing = k_space_resolution(edge, axis=1, factor=1.5, sharp=True)
    smooth = k_space_resolution(edge, axis=1, factor=1.5, sharp=False)
    np.testing.assert_allclose(ringing[:, :], ringing[:1, :] * np.ones_like(edge), atol=1e-6)  # rows untouched
    assert ringing.max() > 1.05 and ringing.min() < -0.05  # Gibbs overshoot at the edges
    assert smooth.max() < 1.01 and smooth.min() > -0.01  # apodised: (almost) no ringing


def test_seeds_reproduce_whole_head_pairs():
    a = make_phantom_pair("pd", "t1", 2, (96, 80), rng=7)
    b = make_phantom_pair("pd", "t1", 2, (96, 80), rng=7)
    for name in ("moving", "fixed", "moving_as_fixed", "moving_head_labels", "fixed_head_labels", "ddf"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    c = make_phantom_pair("pd", "t1", 2, (96, 80), rng=8)
    assert (a.moving_head_labels != c.moving_head_labels).mean() > 0.01


def test_skull_stripped_has_no_head_and_3d_has_one():
    stripped = make_phantom_pair("t2", "t1", 2, (64, 56), rng=0, skull_stripped=True)
    assert stripped.moving_head_labels is None and stripped.moving[stripped.moving_seg == 0].mean() < 0.1
    volume = make_phantom_pair("t1", "ct", 3, (40, 48, 40), rng=0)
    assert volume.moving_head_labels.shape == (40, 48, 40)
    assert {HeadLabel.BONE, HeadLabel.FAT, HeadLabel.SKIN} <= set(np.unique(volume.moving_head_labels))


def test_head_motion_is_a_rigid_part_of_the_true_field():
    from innreg.data.deformations import DeformationParams
    from innreg.data.phantom import MotionParams
    from innreg.metrics import jacobian_determinant

    still = DeformationParams(rotation_deg=0, scale=(1, 1), shear=0, translation=0, elastic_magnitude_vox=0)
    pair = make_phantom_pair("pd", "t1", 2, (96, 80), rng=5, deformation=still, motion=MotionParams(4.0, 4.0))
    ddf = pair.ddf * np.reshape(pair.spacing, (2, 1, 1))  # mm
    assert np.abs(ddf).max() > 0.5  # the head moved
    jac = jacobian_determinant(torch.from_numpy(pair.ddf)[None].double())
    np.testing.assert_allclose(jac.numpy(), 1.0, atol=1e-4)  # rigidly
    # shift at the centre <= 4 mm per axis, rotation <= 4 degrees
    centre = ddf[:, 47:49, 39:41].mean(axis=(1, 2))  # the rotation centre is the grid centre
    assert np.all(np.abs(centre) <= 4.0 + 1e-3)
    angle = np.degrees(np.arctan2(ddf[1, 60, 40] - ddf[1, 36, 40], 24 * pair.spacing[0]))
    assert abs(angle) <= 4.0 + 1e-3
    none = make_phantom_pair("pd", "t1", 2, (96, 80), rng=5, deformation=still, motion=None)
    assert np.abs(none.ddf).max() < 1e-5
    for bad in ({"rotation_deg": -1.0}, {"translation_mm": float("nan")}):
        with pytest.raises(ValueError, match="must be >= 0"):
            MotionParams(**bad)


def test_noise_and_field_of_view_cut():
    from innreg.data.phantom.acquisition import Acquisition, corrupt, cut_field_of_view

    acq = Acquisition(0.0, None, 0.0, 0.0, 0, 1.0, False, 0.0, None, 20.0, None, (1, 1, 5))
    image = np.full((200, 200), 2.0, np.float32)
    noisy = corrupt(image, acq, Modality.PD, level=2.0, rng=np.random.default_rng(0))
    assert np.std(noisy) == pytest.approx(2.0 / 20.0, rel=0.05)  # Rician at SNR 20 (~Gaussian this high)
    cut = cut_field_of_view(noisy, acq)
    assert (cut[:, -5:] == 0).all() and (cut[:, :-5] == noisy[:, :-5]).all()
    background = corrupt(np.zeros((200, 200), np.float32), acq, Modality.PD, level=2.0, rng=np.random.default_rng(1))
    assert background.min() >= 0 and background.mean() == pytest.approx(0.1 * np.sqrt(np.pi / 2), rel=0.05)  # Rayleigh
