"""``innreg phantom``: options, and bad input as one line with exit status 2 and no partial data set."""

import csv

import nibabel as nib
import pytest

from innreg.cli import main


# The options of a pair without affine or elastic misalignment.
NO_MISALIGNMENT = ["--rotation", 0, "--scale", 0, "--shear", 0, "--translation", 0, "--elastic", 0]


def run(argv, capsys):
    code = main([str(a) for a in argv])
    return code, capsys.readouterr()


def test_whole_head_by_default_and_skull_stripped_on_request(tmp_path, capsys):
    code, out = run(["phantom", "--out", tmp_path / "head", "--n", 2, "--size", "40x32", "--moving", "PD", "--workers", 1],
                    capsys)
    assert code == 0 and "train:" in out.out
    header = (tmp_path / "head" / "train.csv").read_text().splitlines()[0].split(",")
    assert header[-3:] == ["moving_as_fixed", "moving_head_labels", "fixed_head_labels"]
    labels = nib.load(tmp_path / "head" / "images" / "pair_0000_moving_head_labels.nii.gz")
    assert labels.header["descrip"].tobytes().rstrip(b"\0").endswith(b"8 air")  # the whole legend fits
    code, _ = run(["phantom", "--out", tmp_path / "brain", "--n", 2, "--size", "40x32", "--skull-stripped",
                   "--spacing", "4"], capsys)
    assert code == 0
    with (tmp_path / "brain" / "test.csv").open() as fh:
        (row,) = list(csv.DictReader(fh))
    assert "moving_head_labels" not in row and (tmp_path / "brain" / row["moving_as_fixed"]).is_file()


def test_misalignment_options_reach_the_generator(tmp_path, capsys):
    """No affine and no elastic part (and, skull-stripped, no head motion): the true field is zero."""
    code, _ = run(["phantom", "--out", tmp_path / "still", "--n", 2, "--size", "32x32", "--skull-stripped",
                   *NO_MISALIGNMENT], capsys)
    assert code == 0
    ddf = nib.load(tmp_path / "still" / "images" / "pair_0000_true_ddf.nii.gz").get_fdata()
    assert abs(ddf).max() == 0.0
    code, _ = run(["phantom", "--out", tmp_path / "moved", "--n", 2, "--size", "32x32", "--skull-stripped",
                   *NO_MISALIGNMENT[:-1], 2], capsys)  # elastic only
    assert code == 0
    assert abs(nib.load(tmp_path / "moved" / "images" / "pair_0000_true_ddf.nii.gz").get_fdata()).max() > 0.1


def test_head_motion_options_reach_the_generator(tmp_path, capsys):
    """A whole head without misalignment still moves rigidly between the scans, unless told not to."""
    for name, motion in (("still", ["--head-rotation", 0, "--head-shift", 0]), ("moved", ["--head-rotation", 0])):
        code, _ = run(["phantom", "--out", tmp_path / name, "--n", 2, "--size", "32x32", "--workers", 1,
                       *NO_MISALIGNMENT, *motion], capsys)
        assert code == 0
    still, moved = (nib.load(tmp_path / name / "images" / "pair_0000_true_ddf.nii.gz") for name in ("still", "moved"))
    assert abs(still.get_fdata()).max() == 0.0
    shift_mm = moved.get_fdata() * nib.affines.voxel_sizes(moved.affine)[:2].reshape(1, 1, 2)
    assert 0.1 < abs(shift_mm).max() <= 4.0 + 1e-3  # a pure shift of at most 4 mm per axis


@pytest.mark.parametrize(
    "options, needle",
    [
        (["--size", "12x32"], "at least 16"),
        (["--size", "100000x100000"], "at most 16777216 voxels"),
        (["--dim", "3", "--size", "512x512x512"], "at most 16777216 voxels"),
        (["--size", "32x32x32"], "needs 2 values"),
    ],
)
def test_bad_options_give_one_line_and_status_2(tmp_path, capsys, options, needle):
    code, out = run(["phantom", "--out", tmp_path / "d", "--size", "32x32", *options], capsys)
    assert code == 2
    lines = out.err.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0] and lines[0].startswith("innreg: error:")
    assert list(tmp_path.iterdir()) == []  # nothing written


@pytest.mark.parametrize(
    "options, needle",
    [
        (["--moving", "mri"], "argument --moving: invalid choice: 'mri'"),
        (["--fixed", "dwi"], "argument --fixed: invalid choice: 'dwi'"),
        (["--n", "1"], "argument --n: must be an integer of at least 2"),
        (["--n", "two"], "argument --n: must be an integer of at least 2"),
        (["--spacing", "0"], "argument --spacing: must be positive, got 0"),
        (["--test-fraction", "1"], "argument --test-fraction: must be between 0 and 1"),
        (["--test-fraction", "nan"], "argument --test-fraction: must be a finite number"),
        (["--spacing", "inf"], "argument --spacing: must be a finite number"),
        (["--scale", "1"], "argument --scale: must be at least 0 and below 1"),
        (["--rotation", "-5"], "argument --rotation: must be 0 or more"),
        (["--head-shift", "-1"], "argument --head-shift: must be 0 or more"),
        (["--elastic", "x"], "argument --elastic: must be a number"),
    ],
)
def test_bad_values_name_the_option(tmp_path, options, needle, capsys):
    """Range errors name the command-line option (argparse's usage and one error line, status 2)."""
    with pytest.raises(SystemExit) as end:
        main(["phantom", "--out", str(tmp_path / "d"), "--size", "32x32", *options])
    assert end.value.code == 2
    assert needle in capsys.readouterr().err.strip().splitlines()[-1]
    assert list(tmp_path.iterdir()) == []


def test_unwritable_out_is_one_line_and_leaves_nothing(tmp_path, capsys):
    blocker = tmp_path / "file.txt"
    blocker.write_text("not a folder")
    code, out = run(["phantom", "--out", blocker / "data", "--n", 2, "--size", "32x32"], capsys)
    assert code == 2 and len(out.err.strip().splitlines()) == 1 and str(blocker / "data") in out.err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.txt"]
