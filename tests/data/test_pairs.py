from pathlib import Path

import numpy as np
import pytest
import torch

from innreg.data.deformations import DeformationParams
from innreg.data.intensity import normalize_intensity, normalize_percentile
from innreg.data.pairs import PairDataset, PairRecord, load_pair, pad_collate, read_manifest
from innreg.errors import InnregInputError


def write_manifest(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.fixture
def pair2d(tmp_path, ramp2d, write_nifti):
    """A 2D pair with labels in tmp_path/data and a manifest with relative paths."""
    data = tmp_path / "data"
    (data / "img").mkdir(parents=True)
    write_nifti(data / "img" / "m.nii.gz", ramp2d)
    write_nifti(data / "img" / "f.nii.gz", ramp2d[::-1].copy())
    write_nifti(data / "img" / "ms.nii.gz", (ramp2d > 5).astype(np.uint8))
    write_nifti(data / "img" / "fs.nii.gz", (ramp2d > 9).astype(np.uint8))
    return write_manifest(
        data / "pairs.csv",
        "moving,fixed,moving_seg,fixed_seg,subject\nimg/m.nii.gz,img/f.nii.gz,img/ms.nii.gz,img/fs.nii.gz,s1\n",
    )


def test_relative_paths_resolve_against_the_csv_folder(pair2d, tmp_path, monkeypatch):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    (record,) = read_manifest(pair2d)
    assert record.moving == pair2d.parent / "img" / "m.nii.gz"
    assert record.fixed_seg == pair2d.parent / "img" / "fs.nii.gz"
    assert record.true_ddf is None
    moving, fixed, moving_seg, fixed_seg = load_pair(record)
    assert moving.shape == fixed.shape == moving_seg.shape == (12, 14)


def test_optional_columns_may_be_absent_or_empty(tmp_path, ramp2d, write_nifti):
    write_nifti(tmp_path / "a.nii", ramp2d)
    write_nifti(tmp_path / "b.nii", ramp2d + 1)
    two = read_manifest(write_manifest(tmp_path / "two.csv", "fixed,moving\nb.nii,a.nii\n"))
    assert two[0].moving.name == "a.nii" and two[0].moving_seg is None
    empty = read_manifest(write_manifest(tmp_path / "e.csv", "moving,fixed,moving_seg\na.nii,b.nii,\n"))
    assert empty[0].moving_seg is None


@pytest.mark.parametrize(
    "text, expected",
    [
        ("moving,moving_seg\na.nii,a.nii\n", "'fixed'"),
        ("moving,fixed\n", "no pairs"),
        ("", "'moving'"),
        ("moving,fixed\na.nii,missing.nii\n", "missing.nii"),
        ("moving,fixed\na.nii,\n", "empty 'fixed'"),
    ],
)
def test_manifest_errors_name_the_file_and_problem(tmp_path, ramp2d, text, expected, write_nifti):
    write_nifti(tmp_path / "a.nii", ramp2d)
    manifest = write_manifest(tmp_path / "bad.csv", text)
    with pytest.raises(InnregInputError) as err:
        read_manifest(manifest)
    assert "bad.csv" in str(err.value) and expected in str(err.value)


def test_missing_manifest(tmp_path):
    with pytest.raises(InnregInputError, match="nope.csv.*not found"):
        read_manifest(tmp_path / "nope.csv")


def test_load_pair_resamples_moving_and_labels_onto_the_fixed_grid(tmp_path, write_nifti):
    fixed = np.random.default_rng(0).random((8, 6)).astype(np.float32)
    # moving: the same scene at half resolution, on a grid shifted by one fixed voxel
    coarse = np.diag([2.0, 2.0, 1.0, 1.0])
    moving = np.arange(20, dtype=np.float32).reshape(5, 4)
    labels = (moving > 9).astype(np.uint8)
    write_nifti(tmp_path / "f.nii", fixed, np.eye(4))
    write_nifti(tmp_path / "m.nii", moving, coarse)
    write_nifti(tmp_path / "ms.nii", labels, coarse)
    record = PairRecord(tmp_path / "m.nii", str(tmp_path / "f.nii"), moving_seg=tmp_path / "ms.nii")
    m, f, ms, fs = load_pair(record)
    assert m.shape == ms.shape == (8, 6) and fs is None
    np.testing.assert_array_equal(m.affine, f.affine)
    # fixed voxel (2i, 2j) is moving voxel (i, j); odd ones interpolate linearly
    np.testing.assert_allclose(m.array[::2, ::2], moving[:4, :3])
    assert m.array[1, 0] == pytest.approx((moving[0, 0] + moving[1, 0]) / 2)
    assert set(np.unique(ms.array)) <= {0, 1} and ms.array.dtype == np.int64


def _slice_index_volume(shape=(8, 10, 12)) -> np.ndarray:
    """Value = index along axis 2, plus a small ramp along axis 0 so that no slice is constant."""
    return np.broadcast_to(np.arange(shape[2], dtype=np.float32), shape) + np.linspace(0, 0.5, shape[0])[:, None, None]


def _volume_records(tmp_path, write_nifti):
    write_nifti(tmp_path / "m.nii.gz", _slice_index_volume())
    write_nifti(tmp_path / "f.nii.gz", _slice_index_volume() * 2)
    return [PairRecord(tmp_path / "m.nii.gz", tmp_path / "f.nii.gz")]


def test_2d_slices_are_drawn_from_the_central_range_of_3d_volumes(tmp_path, write_nifti):
    ds = PairDataset(_volume_records(tmp_path, write_nifti), dim=2, slice_axis=2, slice_range=(0.3, 0.7), seed=1)
    lo, hi = ds.slice_bounds(12)
    assert (lo, hi) == (3, 8)  # floor(0.3 * 11), ceil(0.7 * 11)
    moving_vol, fixed_vol = ds.volumes(0)
    seen = set()
    for _ in range(60):
        item = ds[0]
        assert item["moving"].shape == item["fixed"].shape == (1, 8, 10) and item["index"] == 0
        k = int(np.argmin([np.abs(fixed_vol[:, :, j] - item["fixed"][0].numpy()).max() for j in range(12)]))
        np.testing.assert_array_equal(item["fixed"][0].numpy(), fixed_vol[:, :, k])
        np.testing.assert_array_equal(item["moving"][0].numpy(), moving_vol[:, :, k])  # same slice
        seen.add(k)
    assert seen <= set(range(lo, hi + 1)) and len(seen) > 3
    assert 0.0 <= float(item["moving"].min()) and float(item["moving"].max()) <= 1.0


def test_other_slice_axis_and_3d_items(tmp_path, write_nifti):
    records = _volume_records(tmp_path, write_nifti)
    assert PairDataset(records, dim=2, slice_axis=0)[0]["moving"].shape == (1, 10, 12)
    item = PairDataset(records, dim=3)[0]
    assert item["moving"].shape == (1, 8, 10, 12)
    np.testing.assert_allclose(item["fixed"][0].numpy(), normalize_percentile(_slice_index_volume() * 2))


def test_hu_curve_maps_ct_in_hu_and_leaves_mr_to_its_percentiles(tmp_path, write_nifti):
    ct = _slice_index_volume() * 200.0 - 1000.0  # -1000 (air) to 1200 HU
    write_nifti(tmp_path / "ct.nii.gz", ct)
    write_nifti(tmp_path / "mr.nii.gz", _slice_index_volume() * 2)
    records = [PairRecord(tmp_path / "ct.nii.gz", tmp_path / "mr.nii.gz")]
    moving, fixed = PairDataset(records, dim=3, hu_curve=True).volumes(0)
    np.testing.assert_allclose(moving, normalize_intensity(ct, hu_curve=True))
    np.testing.assert_allclose(fixed, normalize_percentile(_slice_index_volume() * 2))
    plain, _ = PairDataset(records, dim=3).volumes(0)
    np.testing.assert_allclose(plain, normalize_percentile(ct))
    assert not np.allclose(moving, plain)


def test_2d_images_are_used_whole_and_dim3_rejects_them(pair2d):
    records = read_manifest(pair2d)
    item = PairDataset(records, dim=2)[0]
    assert item["moving"].shape == (1, 12, 14)
    with pytest.raises(InnregInputError, match="2D image"):
        PairDataset(records, dim=3)[0]


def test_dataset_resamples_moving_of_another_shape(tmp_path, ramp2d, write_nifti):
    write_nifti(tmp_path / "f.nii", ramp2d, np.eye(4))
    write_nifti(tmp_path / "m.nii", ramp2d[::2, ::2].copy(), np.diag([2.0, 2.0, 1.0, 1.0]))
    item = PairDataset([PairRecord(tmp_path / "m.nii", tmp_path / "f.nii")], dim=2)[0]
    assert item["moving"].shape == item["fixed"].shape == (1, 12, 14)


def test_augmentation_deforms_only_the_moving_image(pair2d):
    records = read_manifest(pair2d)
    plain = PairDataset(records, dim=2)[0]
    augmented = PairDataset(records, dim=2, augment=DeformationParams(rotation_deg=20.0), seed=3)[0]
    assert torch.equal(plain["fixed"], augmented["fixed"])
    assert (plain["moving"] - augmented["moving"]).abs().max() > 0.05
    assert PairDataset(records, dim=2, augment=True).augment == DeformationParams()


def test_pad_collate_zero_pads_to_the_largest_item():
    a = {"moving": torch.ones(1, 4, 5), "fixed": torch.ones(1, 4, 5), "index": 0}
    b = {"moving": torch.full((1, 6, 3), 2.0), "fixed": torch.full((1, 6, 3), 3.0), "index": 7}
    batch = pad_collate([a, b])
    assert batch["moving"].shape == batch["fixed"].shape == (2, 1, 6, 5)
    assert batch["index"].tolist() == [0, 7] and batch["shape"].tolist() == [[4, 5], [6, 3]]
    assert batch["moving"][0, 0, :4, :5].eq(1).all() and batch["moving"][0, 0, 4:].eq(0).all()
    assert batch["fixed"][1, 0, :, :3].eq(3).all() and batch["fixed"][1, 0, :, 3:].eq(0).all()
