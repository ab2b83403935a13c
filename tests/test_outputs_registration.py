"""A registration's outputs are complete or absent, never overwrite its inputs, and errors name the user's
paths: ``innreg register`` (one pair and ``--pairs``), ``innreg apply`` and :func:`innreg.evaluate`."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from innreg.cli import main
from innreg.config import Config
from innreg.data import read_manifest
from innreg.model import INNReg
from innreg.model_file import save_model

from .conftest import TINY


@pytest.fixture(scope="module")
def model_path(tmp_path_factory) -> Path:
    """A tiny untrained 2D network (registering with ``--no-refine`` takes a second)."""
    config = Config.from_dict(TINY)
    path = tmp_path_factory.mktemp("model") / "model.pt"
    save_model(INNReg(config.model), config, path)
    return path


@pytest.fixture
def pair(phantom):
    return read_manifest(phantom["train"])[0]


def register(model_path: Path, moving, fixed, out: Path, *extra) -> list[str]:
    args = ["register", "--model", model_path, "--moving", moving, "--fixed", fixed, "--out", out, *extra]
    return [str(a) for a in [*args, "--quiet", "--no-refine"]]


def contents(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def one_error_line(capsys, status: int) -> str:
    err = capsys.readouterr().err
    assert status == 2 and len(err.strip().splitlines()) == 1, err
    return err.strip()


def test_an_interrupted_register_leaves_the_folder_as_it_was(model_path, pair, tmp_path, capsys, monkeypatch):
    import innreg.reports

    out = tmp_path / "reg"
    assert main(register(model_path, pair.moving, pair.fixed, out, "--moving-seg", pair.moving_seg)) == 0
    (out / "notes.txt").write_text("mine")
    before = contents(out)

    def interrupted(*args, **kwargs):  # Ctrl-C while the last output (the overview) is written
        raise KeyboardInterrupt

    monkeypatch.setattr(innreg.reports, "registration_overview", interrupted)
    other = read_manifest(pair.moving.parent.parent / "train.csv")[1]
    assert main(register(model_path, other.moving, other.fixed, out)) == 130
    assert contents(out) == before
    assert main(register(model_path, other.moving, other.fixed, tmp_path / "new")) == 130
    assert sorted(p.name for p in tmp_path.iterdir()) == ["reg"]  # no folder, no staging left
    capsys.readouterr()


def test_a_rerun_removes_the_earlier_label_map_and_keeps_other_files(model_path, pair, tmp_path):
    out = tmp_path / "reg"
    assert main(register(model_path, pair.moving, pair.fixed, out, "--moving-seg", pair.moving_seg)) == 0
    (out / "notes.txt").write_text("mine")
    ddf = (out / "ddf.nii.gz").read_bytes()
    shutil.copy(pair.fixed, tmp_path / "fixed_copy.nii.gz")  # another pair: the fixed image registered to itself
    assert main(register(model_path, pair.fixed, tmp_path / "fixed_copy.nii.gz", out)) == 0
    assert not (out / "warped_seg.nii.gz").exists()
    assert (out / "notes.txt").read_text() == "mine" and (out / "ddf.nii.gz").read_bytes() != ddf
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fixed_copy.nii.gz", "reg"]


def test_register_refuses_an_out_folder_holding_its_input(model_path, pair, tmp_path, capsys):
    out = tmp_path / "dirX"
    out.mkdir()
    moving = out / "warped.nii.gz"
    shutil.copy(pair.moving, moving)
    line = one_error_line(capsys, main(register(model_path, moving, pair.fixed, out)))
    assert line.startswith(f"innreg: error: {out}: ") and f"{moving} (--moving)" in line
    assert sorted(p.name for p in out.iterdir()) == ["warped.nii.gz"]
    assert moving.read_bytes() == pair.moving.read_bytes()


def test_register_pairs_refuses_an_input_inside_a_pair_folder_it_replaces(model_path, pair, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(register(model_path, pair.moving, pair.fixed, out / "0000_warped")) == 0
    warped = out / "0000_warped" / "warped.nii.gz"  # chaining: register the warped image again into out
    csv = tmp_path / "pairs.csv"
    csv.write_text(f"moving,fixed\n{warped},{pair.fixed}\n")
    before = contents(out / "0000_warped")
    args = ["register", "--model", model_path, "--pairs", csv, "--out", out, "--quiet", "--no-refine"]
    line = one_error_line(capsys, main([str(a) for a in args]))
    assert f"{out}: " in line and f"{warped} (pair 0 moving)" in line
    assert contents(out / "0000_warped") == before


@pytest.fixture
def registration(model_path, pair, tmp_path) -> Path:
    out = tmp_path / "regA"
    assert main(register(model_path, pair.moving, pair.fixed, out, "--moving-seg", pair.moving_seg)) == 0
    return out


def test_apply_refuses_to_overwrite_its_image(registration, pair, tmp_path, capsys):
    image = tmp_path / "same.nii.gz"
    shutil.copy(pair.moving, image)
    alias = tmp_path / "sub" / ".." / "same.nii.gz"
    (tmp_path / "sub").mkdir()
    line = one_error_line(capsys, main(["apply", "--registration", str(registration), "--image", str(image),
                                        "--out", str(alias)]))  # fmt: skip
    assert line.startswith(f"innreg: error: {alias}: ") and str(image) in line
    assert image.read_bytes() == pair.moving.read_bytes()


def test_apply_refuses_to_overwrite_a_file_of_the_registration(registration, pair, capsys):
    before = contents(registration)
    for name in ("ddf.nii.gz", "fixed_grid.nii.gz", "warped_seg.nii.gz"):
        out = registration / name
        line = one_error_line(capsys, main(["apply", "--registration", str(registration), "--image", str(pair.moving),
                                            "--out", str(out)]))  # fmt: skip
        assert line.startswith(f"innreg: error: {out}: ") and "registration" in line
    assert contents(registration) == before


def test_apply_onto_a_folder_names_the_users_path(registration, pair, tmp_path, capsys):
    out = tmp_path / "bad" / "dir.nii.gz"
    out.mkdir(parents=True)
    line = one_error_line(capsys, main(["apply", "--registration", str(registration), "--image", str(pair.moving),
                                        "--out", str(out)]))  # fmt: skip
    assert line == f"innreg: error: {out}: Is a directory"
    assert sorted(p.name for p in out.parent.iterdir()) == ["dir.nii.gz"] and not any(out.iterdir())


def test_evaluate_replaces_an_earlier_evaluations_overviews(model_path, phantom, tmp_path):
    from innreg import evaluate
    from innreg.inference import load_model

    records = read_manifest(phantom["train"])
    out = tmp_path / "eval"
    registrar = load_model(model_path, "cpu", refine=False)
    evaluate(registrar, records, out, progress=False)
    (out / "notes.txt").write_text("mine")
    assert len(list(out.glob("overview_*.png"))) == 2
    evaluate(registrar, records[1:], out, progress=False)
    assert [p.name for p in out.glob("overview_*.png")] == [f"overview_0000_{records[1].moving.name.split('.')[0]}.png"]
    assert len(list((out / "pairs").iterdir())) == 1 and (out / "notes.txt").read_text() == "mine"
