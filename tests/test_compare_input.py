"""``innreg compare`` on hand-made per_pair.csv files: bad ones end with one line naming the file."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from innreg.cli import main
from innreg.errors import InnregInputError
from innreg.results import read_per_pair

HEADER = "pair,moving,fixed,dice_mean\n"


def _csv(path: Path, body: str | bytes, header: str = HEADER) -> Path:
    data = header.encode() + (body if isinstance(body, bytes) else body.encode())
    path.write_bytes(data)
    return path


def _good(path: Path) -> Path:
    return _csv(path, "0,m0,f0,0.9\n1,m1,f1,0.8\n2,m2,f2,0.7\n")


def _compare(capsys, a: Path, b: Path) -> tuple[int, str, str]:
    code = main(["compare", str(a), str(b)])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(
    "body, header, needle",
    [
        ("0,m\xe9,f0,0.9\n1,m1,f1,0.8\n".encode("latin-1"), HEADER, "not UTF-8 text (byte 31)"),
        ("0,m0,f0,0.9,28\n1,m1,f1,0.8,29\n", HEADER.strip() + ",dice_mean\n", "repeats the column(s) dice_mean"),
        ("0,m0,f0,0.9\n1,m1,f1,inf\n", HEADER, "line 3: column dice_mean is inf"),
        ("0,m0,f0,-Infinity\n1,m1,f1,0.8\n", HEADER, "line 2: column dice_mean is -Infinity"),
        ("0,m0,f0,1e999\n1,m1,f1,0.8\n", HEADER, "line 2: column dice_mean is 1e999"),
        ("0,m0,f0,0.9\n1,m1\n", HEADER, "line 3: 2 cells, but the header has 4"),
    ],
)
def test_compare_refuses_what_no_evaluation_writes(tmp_path, capsys, body, header, needle):
    bad = _csv(tmp_path / "per_pair.csv", body, header)
    code, out, err = _compare(capsys, _good(tmp_path / "a.csv"), bad)
    assert code == 2 and out == ""
    assert err.strip() == err.strip().splitlines()[0] and err.startswith(f"innreg: error: {bad}: ")
    assert needle in err


def test_undefined_values_read_as_nan_and_are_left_out(tmp_path, capsys):
    # nan: the metric is undefined for the pair (a label absent from both maps); empty: not measured.
    b = _csv(tmp_path / "b.csv", "0,m0,f0,0.85\n1,m1,f1,nan\n2,m2,f2,\n3,m3,f3,0.6\n")
    values = read_per_pair(b)
    assert math.isnan(values[("m1", "f1")]) and math.isnan(values[("m2", "f2")])
    a = _csv(tmp_path / "a.csv", "0,m0,f0,0.9\n1,m1,f1,0.8\n2,m2,f2,0.7\n3,m3,f3,0.7\n")
    code, out, err = _compare(capsys, a, b)
    assert code == 0 and err == ""
    assert "A - B over 2 pairs: +0.0750" in out and "4 row(s) left out" in out


def test_a_byte_order_mark_is_not_part_of_the_first_column(tmp_path):
    path = _csv(tmp_path / "bom.csv", "0,m0,f0,0.9\n", header="\ufeffpair,moving,fixed,dice_mean\n")
    assert read_per_pair(path) == {("m0", "f0"): 0.9}
    with pytest.raises(InnregInputError, match="needs columns moving, fixed and hd95_mean"):
        read_per_pair(path, "hd95_mean")
