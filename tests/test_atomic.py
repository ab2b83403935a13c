"""Staged output folders: a run's outputs appear under the final name only when the run succeeds."""

import pytest

from innreg.atomic import staged_dir


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
