"""Staged output folders: a run's outputs appear under the final name only when the run succeeds."""

import os
from pathlib import Path

import pytest

from innreg import atomic
from innreg.atomic import atomic_output, check_folder_spares_inputs, check_not_input, staged_dir
from innreg.errors import InnregInputError


def test_staged_dir_moves_its_entries_into_a_new_nested_folder(tmp_path):
    out = tmp_path / "a" / "b"
    with staged_dir(out) as staging:
        assert staging.parent == tmp_path and not out.exists()
        (staging / "pairs").mkdir()
        (staging / "pairs" / "x.txt").write_text("x")
        (staging / "summary.md").write_text("s")
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) == ["pairs", "pairs/x.txt", "summary.md"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a"]


def test_staged_dir_replaces_same_named_entries_and_keeps_the_others(tmp_path):
    out = tmp_path / "out"
    (out / "pairs").mkdir(parents=True)
    (out / "pairs" / "old.txt").write_text("old")
    (out / "notes.txt").write_text("mine")
    with staged_dir(out) as staging:
        (staging / "pairs").mkdir()
        (staging / "pairs" / "new.txt").write_text("new")
    assert sorted(p.name for p in (out / "pairs").iterdir()) == ["new.txt"]
    assert (out / "notes.txt").read_text() == "mine"


def test_a_failing_block_leaves_nothing(tmp_path):
    out = tmp_path / "a" / "out"
    with pytest.raises(RuntimeError):
        with staged_dir(out) as staging:
            (staging / "half.txt").write_text("half")
            raise RuntimeError("broken pair")
    assert list(tmp_path.iterdir()) == []


def test_a_failed_rename_names_the_users_file_not_the_temporary_one(tmp_path):
    out = tmp_path / "dir.nii.gz"
    out.mkdir()
    with pytest.raises(OSError) as info:
        with atomic_output(out, ".nii.gz") as tmp:
            tmp.write_bytes(b"x")
    assert info.value.filename == str(out) and isinstance(info.value, IsADirectoryError)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dir.nii.gz"]


def test_staged_dir_removes_stale_owned_entries_and_keeps_the_users(tmp_path):
    out = tmp_path / "reg"
    out.mkdir()
    for name in ("ddf.nii.gz", "warped_seg.nii.gz", "overview_0003_a.png", "notes.txt"):
        (out / name).write_text("old")
    with staged_dir(out, owned=("ddf.nii.gz", "warped_seg.nii.gz", "overview_*.png")) as staging:
        (staging / "ddf.nii.gz").write_text("new")
    assert {p.name: p.read_text() for p in out.iterdir()} == {"ddf.nii.gz": "new", "notes.txt": "old"}


def test_an_interrupted_block_leaves_an_existing_folder_as_it_was(tmp_path):
    out = tmp_path / "reg"
    out.mkdir()
    (out / "ddf.nii.gz").write_text("old")
    with pytest.raises(KeyboardInterrupt):
        with staged_dir(out, owned=("*.nii.gz",)) as staging:
            (staging / "ddf.nii.gz").write_text("new")
            raise KeyboardInterrupt
    assert {p.name: p.read_text() for p in out.iterdir()} == {"ddf.nii.gz": "old"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["reg"]


def test_a_move_cut_short_leaves_no_last_entry(tmp_path, monkeypatch):
    """The entries in ``last`` (a registration's grids) go first and come back last: a folder whose moves
    were interrupted lacks them, so ``innreg apply`` refuses it."""
    out = tmp_path / "reg"
    out.mkdir()
    for name in ("grid", "ddf", "warped"):
        (out / name).write_text("old")
    calls = []

    def replace(src, dst):
        calls.append(Path(dst).name)
        if len(calls) == 2:
            raise KeyboardInterrupt
        os.rename(src, dst)

    monkeypatch.setattr(atomic.os, "replace", replace)
    with pytest.raises(KeyboardInterrupt):
        with staged_dir(out, owned=("grid", "ddf", "warped"), last=("grid",)) as staging:
            for name in ("grid", "ddf", "warped"):
                (staging / name).write_text("new")
    assert calls[-1] != "grid" and not (out / "grid").exists()


def test_staged_dir_stages_inside_an_existing_folder_whose_parent_is_read_only(tmp_path, monkeypatch):
    out = tmp_path / "reg"
    out.mkdir()
    real_mkdir = Path.mkdir

    def mkdir(self, *args, **kwargs):
        if self.parent == tmp_path and self.name.startswith("."):
            raise PermissionError(13, "Permission denied", str(self))
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", mkdir)
    with staged_dir(out) as staging:
        assert staging.parent == out
        (staging / "a.txt").write_text("a")
    assert sorted(p.name for p in out.iterdir()) == ["a.txt"]


def test_check_not_input_compares_resolved_paths_and_files(tmp_path, monkeypatch):
    image = tmp_path / "same.nii.gz"
    image.write_text("x")
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path / "sub")
    refused = r"^\.\./same\.nii\.gz: .*overwrite the input .*same\.nii\.gz \(--image\)"
    with pytest.raises(InnregInputError, match=refused):
        check_not_input("../same.nii.gz", [("--image", image)])
    os.link(image, tmp_path / "hard.nii.gz")
    with pytest.raises(InnregInputError, match="hard.nii.gz"):
        check_not_input(tmp_path / "hard.nii.gz", [("--image", image)])
    check_not_input(tmp_path / "other.nii.gz", [("--image", image), ("--mask", None)])


def test_check_folder_spares_inputs_refuses_inputs_among_the_owned_entries(tmp_path):
    out = tmp_path / "out"
    owned = ("warped.nii.gz", "0000_*")
    for inside in (out / "warped.nii.gz", out / "0000_a" / "moving.nii.gz", tmp_path / "link" / "warped.nii.gz"):
        (tmp_path / "link").unlink(missing_ok=True)
        (tmp_path / "link").symlink_to(out, target_is_directory=True)
        with pytest.raises(InnregInputError, match=f"^{out}: .*overwrite the input {inside} \\(--moving\\)"):
            check_folder_spares_inputs(out, owned, [("--fixed", None), ("--moving", inside)])
    outside = [("--moving", out / "moving.nii.gz"), ("--fixed", tmp_path / "warped.nii.gz")]
    check_folder_spares_inputs(out, owned, outside)


@pytest.mark.skipif(os.name != "posix", reason="leftovers are cleared on POSIX only")
def test_a_write_clears_what_a_killed_writer_of_this_host_left(tmp_path):
    # A writer killed mid-write (SIGKILL skips its clean-up) leaves its hidden temporary file or staging
    # folder; the next write of the same name removes them, and nothing a live or another host's writer may own.
    import socket
    import subprocess
    import sys

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    host = socket.gethostname()
    target, folder = tmp_path / "checkpoint.pt", tmp_path / "out"
    left = [tmp_path / f".checkpoint.pt.{host}-{dead.pid}-abc123.tmp", tmp_path / f".out.{host}-{dead.pid}-abc123.tmp"]
    kept = [
        tmp_path / f".checkpoint.pt.{host}-{os.getppid()}-abc123.tmp",  # its writer still runs
        tmp_path / f".checkpoint.pt.otherhost-{dead.pid}-abc123.tmp",  # another host's: may still run
        tmp_path / ".checkpoint.pt.abc123.tmp",  # older innreg's name, whose writer cannot be known
        tmp_path / "notes.txt",
    ]
    left[0].write_text("half a checkpoint")
    left[1].mkdir()
    (left[1] / "warped.nii.gz").write_text("half an output")
    for entry in kept:
        entry.write_text("x")
    with atomic_output(target) as tmp:
        tmp.write_text("checkpoint")
    with staged_dir(folder) as staging:
        (staging / "a.txt").write_text("a")
    assert target.read_text() == "checkpoint" and (folder / "a.txt").read_text() == "a"
    assert not any(entry.exists() for entry in left)
    assert all(entry.exists() for entry in kept)
