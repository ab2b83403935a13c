import csv
import os
import signal
import socket
import subprocess
import sys

import nibabel as nib
import numpy as np
import pytest
import torch

from innreg.data import phantom
from innreg.data.io import load_field, load_image, load_labels
from innreg.data.pairs import load_pair, read_manifest
from innreg.data.phantom import (
    NO_CONTRAST_VARIATION,
    PHANTOM_MODALITIES,
    TISSUE_INTENSITY,
    Modality,
    generate_phantom_dataset,
    make_phantom_pair,
)
from innreg.errors import InnregInputError, StopSignal, stop_signals_interrupt
from innreg.metrics import jacobian_determinant
from innreg.core.warp import warp

SIZE = (48, 40)


def label_means(image: np.ndarray, labels: np.ndarray) -> dict[int, float]:
    return {k: float(image[labels == k].mean()) for k in (1, 2, 3)}  # CSF, GM, WM


def test_true_field_maps_moving_onto_fixed_exactly():
    pair = make_phantom_pair("t2", "t2", 2, SIZE, rng=0, contrast=NO_CONTRAST_VARIATION)
    ddf = torch.from_numpy(pair.ddf)[None]
    warped = warp(torch.from_numpy(pair.moving)[None, None], ddf)[0, 0].numpy()
    np.testing.assert_allclose(warped, pair.fixed, atol=1e-5)
    warped_seg = warp(torch.from_numpy(pair.moving_seg)[None, None], ddf, mode="nearest")[0, 0].numpy()
    np.testing.assert_array_equal(warped_seg, pair.fixed_seg)
    assert (pair.moving_seg != pair.fixed_seg).mean() > 0.05  # the pair is actually misaligned
    assert jacobian_determinant(ddf).min() > 0


@pytest.mark.parametrize(
    "modality, order",
    [
        ("t1", (3, 2, 1)),  # WM > GM > CSF
        ("t2", (1, 2, 3)),  # CSF > GM > WM
        ("pd", (1, 2, 3)),
        ("flair", (2, 3, 1)),  # GM > WM > CSF
        ("ct", (2, 3, 1)),
    ],
)
def test_tissue_ordering_per_modality(modality, order):
    for seed in range(2):
        # slices through the lateral ventricles, so that the CSF label is not only the thin outer rim
        pair = make_phantom_pair(modality, modality, 2, (96, 80), rng=seed, slice_range=(0.5, 0.6))
        for image, labels in ((pair.moving, pair.moving_seg), (pair.fixed, pair.fixed_seg)):
            means = label_means(image, labels)
            assert means[order[0]] > means[order[1]] > means[order[2]], (modality, means)


def test_pd_is_flatter_than_t2():
    t2, pd = TISSUE_INTENSITY[Modality.T2], TISSUE_INTENSITY[Modality.PD]
    assert pd[2] / pd[0] > t2[2] / t2[0] and pd[1] / pd[0] > t2[1] / t2[0]


def test_axial_geometry_square_pixels_anterior_up():
    pair = make_phantom_pair("t1", "ct", 2, SIZE, rng=1)
    assert pair.moving.shape == pair.fixed.shape == SIZE and pair.ddf.shape == (2, *SIZE)
    assert pair.spacing[0] == pytest.approx(pair.spacing[1])
    # rows run anterior -> posterior, columns left -> right
    assert nib.aff2axcodes(pair.affine)[:2] == ("P", "R")
    assert set(np.unique(pair.moving_seg)) == {0, 1, 2, 3}
    # the brain is centred and fits: background all around the border
    assert pair.moving_seg[[0, -1], :].max() == 0 and pair.moving_seg[:, [0, -1]].max() == 0


@pytest.mark.parametrize("axis, codes", [("coronal", ("I", "R")), ("sagittal", ("I", "P"))])
def test_other_slice_orientations(axis, codes):
    pair = make_phantom_pair("t2", "t1", 2, SIZE, rng=2, axis=axis)
    assert nib.aff2axcodes(pair.affine)[:2] == codes
    assert (pair.moving_seg > 0).mean() > 0.2


def test_3d_pair():
    pair = make_phantom_pair("flair", "t1", 3, (16, 20, 16), rng=0)
    assert pair.moving.shape == pair.fixed_seg.shape == (16, 20, 16) and pair.ddf.shape == (3, 16, 20, 16)
    assert nib.aff2axcodes(pair.affine) == ("R", "A", "S") and len(set(pair.spacing)) == 1


def test_dataset_without_contact_sheet(tmp_path):
    paths = generate_phantom_dataset(tmp_path / "p", moving="t2", fixed="t1", n=2, size=SIZE, seed=0,
                                     progress=False, contact_sheet_pairs=0)
    assert set(paths) == {"train", "test"} and not (tmp_path / "p" / "contact_sheet.png").exists()
    with pytest.raises(InnregInputError, match="contact_sheet_pairs=-1"):
        generate_phantom_dataset(tmp_path / "q", moving="t2", fixed="t1", n=2, size=SIZE, progress=False,
                                 contact_sheet_pairs=-1)
    assert not (tmp_path / "q").exists()


def test_same_seed_same_pair_and_bad_options():
    a, b = make_phantom_pair("t2", "t1", 2, SIZE, rng=5), make_phantom_pair("t2", "t1", 2, SIZE, rng=5)
    np.testing.assert_array_equal(a.moving, b.moving)
    np.testing.assert_array_equal(a.ddf, b.ddf)
    with pytest.raises(InnregInputError, match="moving='mri'"):
        make_phantom_pair("mri", "t1", 2, SIZE)
    with pytest.raises(InnregInputError, match="size"):
        make_phantom_pair("t2", "t1", 3, SIZE)
    assert set(PHANTOM_MODALITIES) == {"t1", "t2", "pd", "flair", "ct", "ct-hu"}


def test_generated_dataset_files_manifests_and_ground_truth(tmp_path, monkeypatch):
    out = tmp_path / "phantom"
    paths = generate_phantom_dataset(out, moving="t2", fixed="t1", n=3, size=SIZE, seed=0, progress=False)
    assert set(paths) == {"train", "test", "contact_sheet"}
    assert paths["contact_sheet"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir()] == ["phantom"]  # no temporary folder left
    with paths["train"].open() as fh:
        rows = list(csv.DictReader(fh))
    # the original five columns first and unchanged, then the translation's truth and the head labels
    assert list(rows[0]) == ["moving", "fixed", "moving_seg", "fixed_seg", "true_ddf", "moving_as_fixed",
                             "moving_head_labels", "fixed_head_labels"]
    assert len(rows) == 2 and not rows[0]["moving"].startswith("/")
    monkeypatch.chdir(tmp_path)
    (record,) = read_manifest(paths["test"])
    moving, fixed, moving_seg, fixed_seg = load_pair(record)
    ddf = load_field(record.true_ddf, like=fixed)
    warped = warp(torch.from_numpy(moving_seg.array)[None, None], torch.from_numpy(ddf)[None], mode="nearest")
    np.testing.assert_array_equal(warped[0, 0].numpy(), fixed_seg.array)
    # the same pair regenerated in memory (pair i uses default_rng([seed, i]))
    pair = make_phantom_pair("t2", "t1", 2, SIZE, np.random.default_rng([0, 2]))
    np.testing.assert_allclose(fixed.array, pair.fixed)
    np.testing.assert_allclose(fixed.affine, pair.affine, atol=1e-5)
    assert load_labels(record.moving_seg, like=load_image(record.moving)).array.max() == 3


def test_existing_folder_is_kept_unless_overwrite(tmp_path):
    out = tmp_path / "data"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    with pytest.raises(InnregInputError, match="not empty"):
        generate_phantom_dataset(out, n=2, size=SIZE, progress=False)
    generate_phantom_dataset(out, n=2, size=SIZE, progress=False, overwrite=True)
    assert not (out / "keep.txt").exists() and (out / "train.csv").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]


def test_interrupted_generation_leaves_nothing(tmp_path, monkeypatch):
    calls = []

    def failing_pair(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("interrupted")
        return make_phantom_pair(*args, **kwargs)

    monkeypatch.setattr(phantom.simulate, "make_phantom_pair", failing_pair)
    with pytest.raises(RuntimeError, match="interrupted"):
        generate_phantom_dataset(tmp_path / "data", n=3, size=SIZE, progress=False)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(os.name != "posix", reason="POSIX signals")
def test_a_stop_lost_in_a_finalizer_stops_before_the_next_pair(tmp_path, monkeypatch, lose_a_stop):
    # SIGTERM whose exception Python dropped in a finalizer (nibabel's OrderedSet.__del__ runs ~18 times a pair)
    # still stops the run after the pair in progress, leaving nothing (the command line exits 143).
    calls = []

    def pair_losing_a_stop(*args, **kwargs):
        calls.append(1)
        lose_a_stop()
        return make_phantom_pair(*args, **kwargs)

    monkeypatch.setattr(phantom.simulate, "make_phantom_pair", pair_losing_a_stop)
    with pytest.raises(StopSignal) as stopped, stop_signals_interrupt():
        generate_phantom_dataset(tmp_path / "data", n=3, size=SIZE, progress=False)
    assert stopped.value.signum == signal.SIGTERM and len(calls) == 1
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(os.name != "posix", reason="leftovers are cleared on POSIX only")
def test_a_run_clears_the_staging_folder_of_a_killed_one(tmp_path):
    # SIGKILL skips the clean-up of the staging folder beside --out; the next run of this host removes it.
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    left = tmp_path / f".data.{socket.gethostname()}-{dead.pid}-abc123.tmp"
    (left / "images").mkdir(parents=True)
    generate_phantom_dataset(tmp_path / "data", n=2, size=SIZE, progress=False)
    assert [p.name for p in tmp_path.iterdir()] == ["data"]


def test_worker_processes_write_the_same_data_set(tmp_path):
    # More pairs than the pool is given at once (four a worker), so that results keep their order past the first ones.
    serial = generate_phantom_dataset(tmp_path / "serial", "pd", "t1", n=10, size=SIZE, seed=1, progress=False)
    parallel = generate_phantom_dataset(tmp_path / "parallel", "pd", "t1", n=10, size=SIZE, seed=1, progress=False,
                                        workers=2)
    for part in ("train", "test"):
        assert serial[part].read_text() == parallel[part].read_text()
        for record_s, record_p in zip(read_manifest(serial[part]), read_manifest(parallel[part])):
            for column in ("moving", "fixed", "moving_as_fixed", "fixed_seg"):
                a, b = load_image(getattr(record_s, column)).array, load_image(getattr(record_p, column)).array
                np.testing.assert_array_equal(a, b)
