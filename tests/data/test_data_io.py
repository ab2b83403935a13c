import os
import warnings

import nibabel as nib
import numpy as np
import pytest

from innreg.data import io
from innreg.data.io import (
    FIELD_DESCRIPTION,
    Image,
    load_field,
    load_image,
    load_labels,
    save_field,
    save_image,
    voxel_spacing,
)
from innreg.errors import GeometryWarning, InnregInputError


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
def test_round_trip_2d_in_memory_image(tmp_path, ramp2d, suffix, affine):
    path = save_image(tmp_path / f"a{suffix}", ramp2d, Image(ramp2d, affine))
    loaded = load_image(path)
    assert loaded.array.dtype == np.float32 and loaded.shape == (12, 14)
    np.testing.assert_array_equal(loaded.array, ramp2d)
    np.testing.assert_allclose(loaded.affine, affine, atol=1e-6)
    assert voxel_spacing(loaded) == pytest.approx((0.8, 1.5))


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
def test_round_trip_3d_keeps_affine_and_header(tmp_path, ramp3d, suffix, affine, write_nifti):
    src = load_image(write_nifti(tmp_path / f"src{suffix}", ramp3d))
    out = save_image(tmp_path / f"out{suffix}", src.array * 2, src, description="doubled")
    loaded = load_image(out)
    np.testing.assert_allclose(loaded.array, ramp3d * 2)
    np.testing.assert_allclose(loaded.affine, affine, atol=1e-6)
    assert voxel_spacing(loaded) == pytest.approx((0.8, 1.5, 2.0))
    assert nib.load(out).header["descrip"].tobytes().rstrip(b"\0") == b"doubled"


def test_spacing_follows_the_sform_where_pixdim_disagrees(tmp_path, ramp2d):
    # An sform-only header whose pixdim was never updated: the affine (what resampling uses) is the geometry.
    img = nib.Nifti1Image(ramp2d[:, :, None], np.diag([2.0, 0.5, 1.0, 1.0]))
    img.set_qform(None, code=0)
    img.header.set_zooms((1.0, 1.0, 1.0))
    nib.save(img, tmp_path / "sform_only.nii")
    loaded = load_image(tmp_path / "sform_only.nii")
    assert nib.load(tmp_path / "sform_only.nii").header.get_zooms()[:2] == (1.0, 1.0)
    assert voxel_spacing(loaded) == pytest.approx((2.0, 0.5))


def test_headers_that_itk_may_read_elsewhere_warn(tmp_path, ramp2d):
    sform_only = nib.Nifti1Image(ramp2d, np.diag([0.8, 1.5, 1.0, 1.0]))  # what nibabel and innreg write
    nib.save(sform_only, tmp_path / "sform_only.nii")
    disagree = nib.Nifti1Image(ramp2d, np.eye(4))
    disagree.set_qform(np.diag([2.0, 1.0, 1.0, 1.0]), code=1)
    nib.save(disagree, tmp_path / "disagree.nii")
    nib.save(nib.Nifti1Image(np.round(ramp2d * 3), None), tmp_path / "no_geometry.nii")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_image(tmp_path / "sform_only.nii")
    with pytest.warns(GeometryWarning, match="disagree.nii: its qform and sform disagree"):
        load_image(tmp_path / "disagree.nii")
    with pytest.warns(GeometryWarning, match="no_geometry.nii: no qform or sform"):
        load_labels(tmp_path / "no_geometry.nii")


def test_trailing_singleton_is_squeezed_and_written_back(tmp_path, ramp2d, affine, write_nifti):
    src = load_image(write_nifti(tmp_path / "slice.nii.gz", ramp2d[:, :, None, None]))
    assert src.shape == (12, 14)
    out = save_image(tmp_path / "out.nii.gz", src.array + 1, src)
    assert nib.load(out).shape == (12, 14, 1, 1)
    np.testing.assert_allclose(nib.load(out).affine, affine, atol=1e-6)


def test_middle_singleton_axis_keeps_world_positions(tmp_path, ramp2d, affine, write_nifti):
    # An H x 1 x W coronal slice: pixel (i, j) is voxel (i, 0, j) on disk.
    src = load_image(write_nifti(tmp_path / "cor.nii", ramp2d[:, None, :]))
    assert src.shape == (12, 14)
    i, j = 3, 5
    np.testing.assert_allclose(src.affine @ [i, j, 0, 1], affine @ [i, 0, j, 1])
    assert voxel_spacing(src) == pytest.approx((0.8, 2.0))
    out = save_image(tmp_path / "out.nii", src.array, src)
    assert nib.load(out).shape == (12, 1, 14)
    np.testing.assert_allclose(nib.load(out).affine, affine, atol=1e-6)


def test_integer_arrays_get_a_small_integer_type(tmp_path, ramp2d, affine):
    labels = (ramp2d > 10).astype(np.int64) * 3
    out = save_image(tmp_path / "seg.nii.gz", labels, Image(ramp2d, affine))
    assert nib.load(out).get_data_dtype() == np.uint8
    np.testing.assert_array_equal(load_labels(out).array, labels)


@pytest.mark.parametrize("shape", [(12, 14), (8, 10, 6)])
def test_field_round_trip(tmp_path, shape, affine):
    ref = Image(np.random.default_rng(0).random(shape).astype(np.float32), affine)
    ddf = np.random.default_rng(1).normal(size=(len(shape), *shape)).astype(np.float32)
    path = save_field(tmp_path / "ddf.nii.gz", ddf, ref)
    img = nib.load(path)
    assert img.shape == (*shape, *([1] * (3 - len(shape))), 1, len(shape))
    assert img.header.get_intent()[0] == "vector"
    assert img.header["descrip"].tobytes().rstrip(b"\0").decode() == FIELD_DESCRIPTION
    assert len(FIELD_DESCRIPTION) < 80
    np.testing.assert_array_equal(load_field(path, like=ref), ddf)


def test_field_of_a_squeezed_slice_follows_its_array_axes(tmp_path, ramp2d, write_nifti):
    src = load_image(write_nifti(tmp_path / "cor.nii", ramp2d[:, None, :]))
    ddf = np.stack([np.full(src.shape, 1.0), np.full(src.shape, 2.0)]).astype(np.float32)
    path = save_field(tmp_path / "ddf.nii", ddf, src)
    assert nib.load(path).shape == (12, 1, 14, 1, 2)
    np.testing.assert_array_equal(load_field(path, like=src), ddf)


def _bad_files(tmp_path, ramp3d, write_nifti):
    text = tmp_path / "x.nii.gz"
    text.write_text("not an image")
    nan = ramp3d.copy()
    nan[1, 2, 3] = np.nan
    inf = ramp3d.copy()
    inf[0, 0, 0] = np.inf
    return {
        "missing": (tmp_path / "missing.nii.gz", "not found"),
        "text": (text, "not a NIfTI"),
        "nan": (write_nifti(tmp_path / "nan.nii.gz", nan), "NaN"),
        "inf": (write_nifti(tmp_path / "inf.nii.gz", inf), "infinite"),
        "constant": (write_nifti(tmp_path / "const.nii.gz", np.full((5, 6), 3.0, np.float32)), "constant"),
        "4d": (write_nifti(tmp_path / "fourd.nii.gz", np.random.rand(4, 5, 6, 2).astype(np.float32)), "4D"),
        "complex": (write_nifti(tmp_path / "cplx.nii", (ramp3d + 1j).astype(np.complex64)), "complex"),
        "1d": (write_nifti(tmp_path / "line.nii", np.arange(5.0)[:, None, None]), "fewer than 2"),
        "empty": (write_nifti(tmp_path / "empty.nii", np.zeros((0, 5), np.float32)), "empty"),
    }


@pytest.mark.parametrize("case", ["missing", "text", "nan", "inf", "constant", "4d", "complex", "1d", "empty"])
def test_bad_images_raise_input_error_naming_the_file(tmp_path, ramp3d, case, write_nifti):
    path, reason = _bad_files(tmp_path, ramp3d, write_nifti)[case]
    with pytest.raises(InnregInputError) as err:
        load_image(path)
    message = str(err.value)
    assert path.name in message and reason in message and "\n" not in message


def test_singleton_fourth_axis_is_accepted(tmp_path, ramp3d, write_nifti):
    assert load_image(write_nifti(tmp_path / "v.nii.gz", ramp3d[..., None])).shape == ramp3d.shape


def test_labels_must_be_integers(tmp_path, ramp2d, write_nifti):
    path = write_nifti(tmp_path / "seg.nii.gz", ramp2d + 0.5)
    with pytest.raises(InnregInputError, match="seg.nii.gz.*non-integer"):
        load_labels(path)


def test_label_shape_mismatch_names_both_files(tmp_path, ramp2d, write_nifti):
    image = load_image(write_nifti(tmp_path / "image.nii.gz", ramp2d))
    seg = write_nifti(tmp_path / "seg.nii.gz", np.zeros((12, 13), np.int16))
    with pytest.raises(InnregInputError) as err:
        load_labels(seg, like=image)
    assert "seg.nii.gz" in str(err.value) and "image.nii.gz" in str(err.value)


def test_constant_label_map_is_allowed(tmp_path, write_nifti):
    assert load_labels(write_nifti(tmp_path / "seg.nii", np.zeros((4, 5), np.uint8))).array.dtype == np.int64


def test_output_must_be_nifti(tmp_path, ramp2d, affine):
    with pytest.raises(InnregInputError, match="out.png"):
        save_image(tmp_path / "out.png", ramp2d, Image(ramp2d, affine))


def test_failed_write_leaves_no_partial_file(tmp_path, ramp2d, monkeypatch, affine):
    ref = Image(ramp2d, affine)
    target = save_image(tmp_path / "out.nii.gz", ramp2d, ref)
    before = target.read_bytes()

    def broken_save(img, filename):
        with open(filename, "wb") as fh:
            fh.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(io.nib, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_image(target, ramp2d * 2, ref)
    with pytest.raises(OSError, match="disk full"):
        save_field(tmp_path / "new_ddf.nii.gz", np.zeros((2, 12, 14), np.float32), ref)
    assert target.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["out.nii.gz"]
