"""Fuzz suite: odd or broken inputs never end in a traceback.

Broken input (a bad CSV, a bad NIfTI file, a bad model, an unusable output path) ends with exit
status 2, exactly one line on stderr naming the file and the problem, and nothing half-written.
Unusual but valid input (a byte-order mark, quoted paths, spaces in paths, relative paths from
another working directory, int64 voxels, singleton axes) just works.
"""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
import yaml

from innreg.cli import main
from innreg.data import read_manifest


@pytest.fixture(scope="module")
def model(phantom, tmp_path_factory, tiny_dict) -> Path:
    """A tiny trained model (1 step)."""
    root = tmp_path_factory.mktemp("fuzz_model")
    config = root / "tiny.yaml"
    config.write_text(yaml.safe_dump(tiny_dict))
    out = root / "run"
    assert main(["train", "--pairs", str(phantom["train"]), "--out", str(out), "--config", str(config), "--steps", "1", "--quiet"]) == 0
    return out / "model.pt"


@pytest.fixture
def pair(phantom) -> tuple[Path, Path, Path]:
    """``(moving, fixed, moving_seg)`` of the first training pair."""
    record = read_manifest(phantom["train"])[0]
    return record.moving, record.fixed, record.moving_seg


def _fails(capsys, args: list[str], *needles: str) -> str:
    """Run the CLI, expect status 2 and one stderr line containing every needle; return the line."""
    status = main(args)
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert status == 2, err
    assert len(lines) == 1, err
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def _works(capsys, args: list[str]) -> None:
    status = main(args)
    err = capsys.readouterr().err
    assert status == 0, err


def _register(model: Path, moving: Path, fixed: Path, out: Path) -> list[str]:
    return ["register", "--model", str(model), "--moving", str(moving), "--fixed", str(fixed), "--out", str(out), "--no-refine"]


def _register_pairs(model: Path, csv: Path, out: Path) -> list[str]:
    return ["register", "--model", str(model), "--pairs", str(csv), "--out", str(out), "--no-refine"]


def _nifti(path: Path, data: np.ndarray, affine: np.ndarray | None = None) -> Path:
    nib.save(nib.Nifti1Image(data, np.eye(4) if affine is None else affine, dtype=data.dtype), str(path))
    return path


def _patch(path: Path, offset: int, value: bytes) -> Path:
    """Overwrite header bytes of an uncompressed ``.nii`` (for headers nibabel refuses to write)."""
    raw = bytearray(path.read_bytes())
    raw[offset : offset + len(value)] = value
    path.write_bytes(bytes(raw))
    return path


# ----------------------------------------------------------------------------------------------
# CSV manifests
# ----------------------------------------------------------------------------------------------


def _copy_pair(pair, folder: Path) -> tuple[Path, Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    return tuple(Path(shutil.copy(p, folder / p.name)) for p in pair)


def test_csv_empty_file(capsys, model, tmp_path):
    csv = tmp_path / "empty.csv"
    csv.write_text("")
    _fails(capsys, _register_pairs(model, csv, tmp_path / "out"), str(csv), "empty")
    assert not (tmp_path / "out").exists()


def test_csv_header_only(capsys, model, tmp_path):
    csv = tmp_path / "header.csv"
    csv.write_text("moving,fixed\n")
    _fails(capsys, _register_pairs(model, csv, tmp_path / "out"), str(csv), "no pairs")


def test_csv_duplicate_columns(capsys, model, pair, tmp_path):
    csv = tmp_path / "dup.csv"
    csv.write_text(f"moving,fixed,moving\n{pair[0]},{pair[1]},{pair[0]}\n")
    _fails(capsys, _register_pairs(model, csv, tmp_path / "out"), str(csv), "repeats the column(s) moving")


def test_csv_not_utf8(capsys, model, tmp_path):
    csv = tmp_path / "latin1.csv"
    csv.write_bytes("moving,fixed\nbr\xfbl\xe9.nii.gz,x.nii.gz\n".encode("latin-1"))
    _fails(capsys, _register_pairs(model, csv, tmp_path / "out"), str(csv), "not UTF-8")


def test_csv_missing_file_names_the_line(capsys, model, pair, tmp_path):
    csv = tmp_path / "missing.csv"
    csv.write_text(f"moving,fixed\n{pair[0]},{tmp_path / 'nope.nii.gz'}\n")
    _fails(capsys, _register_pairs(model, csv, tmp_path / "out"), str(csv), "line 2", "nope.nii.gz", "not found")


def test_csv_bom_quotes_spaces_extra_cells_work(capsys, model, pair, tmp_path):
    moving, fixed, seg = _copy_pair(pair, tmp_path / "my data, v2")
    csv = tmp_path / "odd.csv"
    # byte-order mark, quoted paths with a comma and spaces, a row with one cell more than the header
    csv.write_text(f'\ufeffmoving,fixed,moving_seg\n"{moving}", "{fixed}" ,"{seg}",extra\n', encoding="utf-8")
    _works(capsys, _register_pairs(model, csv, tmp_path / "out"))
    (folder,) = [entry for entry in (tmp_path / "out").iterdir() if entry.is_dir()]  # and registrations.csv
    assert (folder / "warped_seg.nii.gz").is_file()


def test_csv_relative_paths_from_another_cwd(capsys, model, pair, tmp_path, monkeypatch):
    _copy_pair(pair, tmp_path / "data" / "images")
    csv = tmp_path / "data" / "pairs.csv"
    csv.write_text(f"moving,fixed\nimages/{pair[0].name},images/{pair[1].name}\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    _works(capsys, _register_pairs(model, Path("../data/pairs.csv"), Path("out")))
    expected = {f"0000_{pair[0].name.split('.')[0]}", "registrations.csv"}  # the pair's folder and the index
    assert {entry.name for entry in (elsewhere / "out").iterdir()} == expected


# ----------------------------------------------------------------------------------------------
# NIfTI files
# ----------------------------------------------------------------------------------------------


def test_nifti_truncated_gz(capsys, model, pair, tmp_path):
    bad = tmp_path / "truncated.nii.gz"
    bad.write_bytes(pair[0].read_bytes()[:200])
    _fails(capsys, _register(model, bad, pair[1], tmp_path / "out"), str(bad))
    assert not (tmp_path / "out").exists()


def test_nifti_truncated_uncompressed(capsys, model, pair, tmp_path):
    bad = tmp_path / "truncated.nii"
    bad.write_bytes(gzip.decompress(pair[0].read_bytes())[:400])
    _fails(capsys, _register(model, bad, pair[1], tmp_path / "out"), str(bad))


def test_nifti_nan_in_affine(capsys, model, pair, tmp_path):
    bad = _nifti(tmp_path / "nan.nii", nib.load(pair[0]).get_fdata().astype(np.float32))
    _patch(bad, 280, np.float32(np.nan).tobytes())  # srow_x[0]
    _fails(capsys, _register(model, bad, pair[1], tmp_path / "out"), str(bad), "NaN")


@pytest.mark.parametrize("value, needle", [(0.0, "non-zero"), (-1.0, "positive")])
def test_nifti_zero_or_negative_spacing(capsys, model, pair, tmp_path, value, needle):
    bad = _nifti(tmp_path / "spacing.nii", nib.load(pair[0]).get_fdata().astype(np.float32))
    _patch(bad, 80, np.float32(value).tobytes())  # pixdim[1]
    _fails(capsys, _register(model, bad, pair[1], tmp_path / "out"), str(bad), "pixdim", needle)


def test_nifti_zero_length_axis_in_affine(capsys, model, pair, tmp_path):
    bad = _nifti(tmp_path / "flat.nii", nib.load(pair[0]).get_fdata().astype(np.float32))
    _patch(bad, 296, np.zeros(4, np.float32).tobytes())  # srow_y
    _fails(capsys, _register(model, bad, pair[1], tmp_path / "out"), str(bad), "singular")


def test_nifti_complex_voxels(capsys, model, pair, tmp_path):
    data = nib.load(pair[0]).get_fdata()
    bad = _nifti(tmp_path / "complex.nii.gz", (data + 1j * data).astype(np.complex64))
    _fails(capsys, _register(model, bad, pair[1], tmp_path / "out"), str(bad), "complex64")


def test_nifti_binary_datatype(capsys, model, pair, tmp_path):
    bad = _nifti(tmp_path / "bool.nii", (nib.load(pair[0]).get_fdata() > 0.5).astype(np.uint8))
    _patch(bad, 70, np.array([1, 1], np.int16).tobytes())  # datatype DT_BINARY, bitpix 1
    _fails(capsys, _register(model, bad, pair[1], tmp_path / "out"), str(bad))


def test_nifti_5d(capsys, model, pair, tmp_path):
    data = nib.load(pair[0]).get_fdata().astype(np.float32)
    bad = _nifti(tmp_path / "5d.nii.gz", np.stack([data, data], axis=-1)[:, :, None, None, :])
    _fails(capsys, _register(model, bad, pair[1], tmp_path / "out"), str(bad), "5D")


def test_nifti_nan_voxels(capsys, model, pair, tmp_path):
    data = nib.load(pair[0]).get_fdata().astype(np.float32)
    data[3, 3] = np.nan
    bad = _nifti(tmp_path / "nanvox.nii.gz", data)
    _fails(capsys, _register(model, bad, pair[1], tmp_path / "out"), str(bad), "NaN")


def test_nifti_int64_and_singleton_axes_work(capsys, model, pair, tmp_path):
    moving = nib.load(pair[0])
    as_int = _nifti(tmp_path / "int64.nii.gz", np.round(moving.get_fdata() * 1000).astype(np.int64), moving.affine)
    fixed = nib.load(pair[1])
    with_singleton = _nifti(tmp_path / "h1w.nii.gz", fixed.get_fdata().astype(np.float32)[:, None, :], fixed.affine)
    _works(capsys, _register(model, as_int, with_singleton, tmp_path / "out"))
    assert nib.load(tmp_path / "out" / "warped.nii.gz").shape == nib.load(with_singleton).shape


def test_label_map_with_fractions(capsys, model, pair, tmp_path):
    bad = _nifti(tmp_path / "seg.nii.gz", nib.load(pair[2]).get_fdata().astype(np.float32) + 0.5)
    args = _register(model, pair[0], pair[1], tmp_path / "out") + ["--moving-seg", str(bad)]
    _fails(capsys, args, str(bad), "non-integer")


def test_label_map_by_its_header_with_fractions_in_info(capsys, pair, tmp_path):
    image = nib.Nifti1Image(nib.load(pair[2]).get_fdata().astype(np.float32) + 0.5, np.eye(4))
    image.header.set_intent("label")  # without the intent, info lists a fractional file as an image
    nib.save(image, tmp_path / "seg.nii.gz")
    _fails(capsys, ["info", str(tmp_path / "seg.nii.gz")], str(tmp_path / "seg.nii.gz"), "non-integer")


# ----------------------------------------------------------------------------------------------
# Model files
# ----------------------------------------------------------------------------------------------


def test_model_truncated(capsys, model, pair, tmp_path):
    bad = tmp_path / "model.pt"
    bad.write_bytes(model.read_bytes()[:1000])
    _fails(capsys, _register(bad, pair[0], pair[1], tmp_path / "out"), str(bad), "cannot read model")
    assert not (tmp_path / "out").exists()


def test_model_from_a_newer_format(capsys, model, pair, tmp_path):
    saved = torch.load(model, weights_only=False)
    saved["format"] = "innreg-model/99"
    bad = tmp_path / "newer.pt"
    torch.save(saved, bad)
    _fails(capsys, _register(bad, pair[0], pair[1], tmp_path / "out"), str(bad), "innreg-model/99", "upgrade")


def test_model_not_a_model(capsys, pair, tmp_path):
    bad = tmp_path / "notes.pt"
    bad.write_text("hello")
    _fails(capsys, _register(bad, pair[0], pair[1], tmp_path / "out"), str(bad))


# ----------------------------------------------------------------------------------------------
# Output paths
# ----------------------------------------------------------------------------------------------


def test_register_out_is_an_existing_file(capsys, model, pair, tmp_path):
    out = tmp_path / "taken"
    out.write_text("keep me")
    _fails(capsys, _register(model, pair[0], pair[1], out), str(out), "not a folder")
    assert out.read_text() == "keep me"


def test_register_out_below_a_file(capsys, model, pair, tmp_path):
    (tmp_path / "file").write_text("")
    out = tmp_path / "file" / "sub"
    _fails(capsys, _register(model, pair[0], pair[1], out), str(out), "cannot be created", "is a file")


def test_register_out_unwritable(capsys, model, pair):
    # /proc refuses new folders even to root (chmod does not stop root, so a read-only folder would not do)
    out = Path("/proc/1/innreg-out")
    _fails(capsys, _register(model, pair[0], pair[1], out), "/proc/1")


def test_evaluate_out_is_an_existing_file(capsys, model, phantom, tmp_path):
    out = tmp_path / "taken"
    out.write_text("")
    _fails(capsys, ["evaluate", "--model", str(model), "--pairs", str(phantom["test"]), "--out", str(out), "--quiet"], str(out))


def test_train_out_is_an_existing_file(capsys, phantom, tmp_path):
    out = tmp_path / "taken"
    out.write_text("keep me")
    _fails(capsys, ["train", "--pairs", str(phantom["train"]), "--out", str(out), "--steps", "1", "--quiet"], str(out), "not a folder")
    assert out.read_text() == "keep me"


def test_phantom_out_is_an_existing_file(capsys, tmp_path):
    out = tmp_path / "taken"
    out.write_text("keep me")
    _fails(capsys, ["phantom", "--out", str(out), "--n", "2", "--size", "32x32"], str(out), "not a folder")
    assert out.read_text() == "keep me"


def test_apply_out_below_a_file(capsys, model, pair, tmp_path):
    registration = tmp_path / "reg"
    assert main(_register(model, pair[0], pair[1], registration)) == 0
    capsys.readouterr()  # the set-up's own output (its progress bar) is not the failure's
    (tmp_path / "file").write_text("")
    out = tmp_path / "file" / "x.nii.gz"
    _fails(capsys, ["apply", "--registration", str(registration), "--image", str(pair[0]), "--out", str(out)], str(out), "is a file")


def test_unknown_device(capsys, model, pair, tmp_path):
    _fails(capsys, _register(model, pair[0], pair[1], tmp_path / "out") + ["--device", "tpu"], "--device tpu", "auto, cpu")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("command", ["register", "evaluate"])
def test_a_broken_later_pair_leaves_no_earlier_outputs(capsys, model, phantom, tmp_path, command):
    first = read_manifest(phantom["test"])[0]
    bad = tmp_path / "truncated.nii.gz"
    bad.write_bytes(first.moving.read_bytes()[:200])
    row = f"{{}},{first.fixed},{first.moving_seg},{first.fixed_seg}"
    csv = tmp_path / "pairs.csv"
    csv.write_text("moving,fixed,moving_seg,fixed_seg\n" + row.format(first.moving) + "\n" + row.format(bad) + "\n")
    out = tmp_path / "deep" / "out"
    args = _register_pairs(model, csv, out) + ["--quiet"] if command == "register" else [
        "evaluate", "--model", str(model), "--pairs", str(csv), "--out", str(out), "--quiet", "--no-refine"]
    _fails(capsys, args, str(bad))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pairs.csv", "truncated.nii.gz"]


def test_failed_train_leaves_no_run_folder(capsys, pair, tmp_path):
    bad = tmp_path / "truncated.nii.gz"
    bad.write_bytes(pair[0].read_bytes()[:200])
    csv = tmp_path / "pairs.csv"
    csv.write_text(f"moving,fixed\n{bad},{pair[1]}\n")
    out = tmp_path / "run"
    _fails(capsys, ["train", "--pairs", str(csv), "--out", str(out), "--steps", "2", "--quiet"], str(bad))
    assert not out.exists()
