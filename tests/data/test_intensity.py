import numpy as np
import pytest

from innreg.data.intensity import (
    HU_CURVE_KNOTS,
    Interpolation,
    background_value,
    hu_curve_map,
    looks_like_hu,
    normalize_intensity,
    normalize_percentile,
    resample_to,
)
from innreg.data.io import Image


def test_percentiles_map_to_zero_and_one_and_clip():
    values = np.arange(101, dtype=np.float64)  # percentile p of 0..100 is p
    out = normalize_percentile(values, lower=10, upper=90)
    assert out.dtype == np.float32
    assert out[50] == pytest.approx(0.5)
    assert out[10] == pytest.approx(0.0) and out[90] == pytest.approx(1.0)
    assert out[0] == 0.0 and out[100] == 1.0


def test_percentiles_are_taken_inside_the_mask():
    values = np.concatenate([np.zeros(50), np.arange(101, dtype=np.float64)])
    mask = values > 0
    out = normalize_percentile(values, lower=0, upper=100, mask=mask)
    # inside the mask the values are 1..100, so 1 -> 0 and 100 -> 1; the background clips to 0
    assert out[51] == pytest.approx(0.0) and out[-1] == pytest.approx(1.0)
    assert out[50 + 50] == pytest.approx(49 / 99)
    assert (out[:50] == 0).all()


def test_degenerate_percentiles_fall_back_to_the_range():
    values = np.zeros(100)
    values[-1] = 4.0
    out = normalize_percentile(values)  # 1st and 99th percentiles are both 0
    assert out[-1] == 1.0 and out[0] == 0.0
    assert (normalize_percentile(np.full((3, 3), 2.0)) == 0).all()


def test_hu_curve_maps_the_knots_and_interpolates_between_them():
    hu = np.array([-1200.0, -1000, -550, -100, 0, 100, 800, 1500, 3000])
    out = normalize_intensity(hu, hu_curve=True)
    assert out.dtype == np.float32
    # knots (-1000, 0), (-100, 0.2), (100, 0.9), (1500, 1); halfway between two knots, halfway between values;
    # clipped outside
    np.testing.assert_allclose(out, [0.0, 0.0, 0.1, 0.2, 0.55, 0.9, 0.95, 1.0, 1.0], atol=1e-6)
    assert HU_CURVE_KNOTS[0] == (-1000.0, 0.0) and HU_CURVE_KNOTS[-1] == (1500.0, 1.0)
    # the curve itself asks nothing: soft-tissue values alone (no air, so not detected as HU) still map by it
    np.testing.assert_allclose(hu_curve_map(np.array([0.0, 100.0])), [0.55, 0.9], atol=1e-6)


def test_only_images_that_look_like_hu_get_the_curve():
    ct = np.concatenate([np.full(30, -1000.0), np.linspace(-100, 1200, 70)])
    mr = np.linspace(0.0, 800.0, 100)
    assert looks_like_hu(ct) and not looks_like_hu(mr)
    assert not looks_like_hu(np.concatenate([[-1000.0], mr, mr]))  # one low outlier: the 1st percentile decides
    np.testing.assert_array_equal(normalize_intensity(mr, hu_curve=True), normalize_percentile(mr))
    np.testing.assert_array_equal(normalize_intensity(ct, hu_curve=False), normalize_percentile(ct))
    assert normalize_intensity(ct, hu_curve=True)[0] == 0.0
    # a fixed mapping: a mask (which sets the percentiles of other images) changes nothing for CT in HU
    curve = normalize_intensity(ct, hu_curve=True)
    np.testing.assert_array_equal(normalize_intensity(ct, ct > -500, hu_curve=True), curve)
    inside = mr > 400
    np.testing.assert_array_equal(normalize_intensity(mr, inside, hu_curve=True), normalize_percentile(mr, mask=inside))


def test_resample_onto_identical_grid_is_a_copy(ramp2d, affine):
    image = Image(ramp2d, affine)
    out = resample_to(image, Image(np.zeros_like(ramp2d), affine))
    np.testing.assert_array_equal(out.array, ramp2d)
    assert out.array is not ramp2d


def test_resample_integer_shift(ramp2d, affine):
    # reference voxel (i, j) sits where image voxel (i + 2, j - 1) is
    shifted = affine.copy()
    shifted[:3, 3] = affine[:3, :3] @ [2, -1, 0] + affine[:3, 3]
    out = resample_to(Image(ramp2d, affine), Image(np.zeros((12, 14)), shifted))
    np.testing.assert_allclose(out.array[:10, 1:], ramp2d[2:, :-1], rtol=1e-6)
    assert (out.array[10:] == 0).all() and (out.array[:, 0] == 0).all()
    np.testing.assert_array_equal(out.affine, shifted)


def test_resample_transposed_grid_and_labels_stay_labels(ramp3d, affine):
    # The reference lists the same voxels with axes 0 and 1 swapped.
    swapped = affine[:, [1, 0, 2, 3]]
    labels = (ramp3d * 5).astype(np.int64) % 4
    out = resample_to(Image(labels, affine), Image(np.zeros((10, 8, 6)), swapped), Interpolation.NEAREST)
    np.testing.assert_array_equal(out.array, labels.transpose(1, 0, 2))
    assert out.array.dtype == np.int64


def test_resample_to_coarser_shifted_grid_interpolates_linearly():
    image = np.tile(np.arange(9, dtype=np.float32), (9, 1))  # value = column index
    coarse = np.diag([2.0, 2.0, 1.0, 1.0])
    coarse[:2, 3] = 0.5  # reference voxel (i, j) sits at image position (2i + 0.5, 2j + 0.5)
    out = resample_to(Image(image, np.eye(4)), Image(np.zeros((4, 4)), coarse))
    np.testing.assert_allclose(out.array, np.tile([0.5, 2.5, 4.5, 6.5], (4, 1)), rtol=1e-6)


def test_points_outside_the_grid_read_air_for_ct_in_hu_and_zero_otherwise(ramp2d, affine):
    shifted = affine.copy()
    shifted[:3, 3] = affine[:3, :3] @ [2, 0, 0] + affine[:3, 3]  # the last two rows lie outside
    reference = Image(np.zeros(ramp2d.shape), shifted)
    ct = -1000.0 + 100.0 * ramp2d  # -1000 to 1390 HU
    assert background_value(ct) == -1000.0 and background_value(ramp2d) == 0.0
    np.testing.assert_allclose(resample_to(Image(ct, affine), reference).array[-2:], -1000.0)
    assert (resample_to(Image(ramp2d, affine), reference).array[-2:] == 0).all()
    labels = np.ones(ramp2d.shape, np.int16)
    assert (resample_to(Image(labels, affine), reference, Interpolation.NEAREST).array[-2:] == 0).all()
