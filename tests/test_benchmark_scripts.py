"""Hand cases for the measures that benchmark scripts compute themselves."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _script(name: str):
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_haar_hh_is_the_checkerboard_component():
    haar_hh = _script("translation_fidelity").haar_hh
    checkerboard = np.indices((6, 8)).sum(axis=0) % 2 * 2.0 - 1.0  # +-1 alternating in both axes
    np.testing.assert_allclose(haar_hh(checkerboard), np.full((3, 4), -2.0))  # (-1 - 1 - 1 - 1) / 2
    ramps = np.add.outer(np.arange(6.0), 3.0 * np.arange(8.0))  # linear in rows and columns: no HH
    np.testing.assert_allclose(haar_hh(ramps), np.zeros((3, 4)))
    assert haar_hh(np.ones((7, 5))).shape == (3, 2)  # the even-sized crop


def test_whole_cells_are_the_cells_wholly_inside_the_mask():
    whole_cells = _script("translation_fidelity").whole_cells
    mask = np.zeros((5, 6), dtype=bool)
    mask[0:3, 0:4] = True  # rows 0-2: cells of row 0 inside, cells of row 1 only half inside
    expected = np.array([[True, True, False], [False, False, False]])
    np.testing.assert_array_equal(whole_cells(mask), expected)
