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


def test_mono_modal_twins_share_fixed_image_and_field(tmp_path):
    """The premise of mono_modal_ceiling.py: the same phantom command with another moving contrast gives
    the same fixed images and true fields; a set of another seed is refused."""
    from innreg.data import read_manifest
    from innreg.data.phantom import generate_phantom_dataset

    script = _script("mono_modal_ceiling")
    sets = {}
    for name, moving, seed in (("t2", "t2", 3), ("t1", "t1", 3), ("other", "t1", 4)):
        generate_phantom_dataset(
            tmp_path / name, n=2, moving=moving, fixed="t1", size=(40, 32), seed=seed, test_fraction=0.5, progress=False,
            contact_sheet_pairs=1,
        )
        sets[name] = read_manifest(tmp_path / name / "test.csv")[0]
    assert script.twin_problem(sets["t2"], sets["t1"]) is None
    assert "not the fixed image" in script.twin_problem(sets["t2"], sets["other"])


def test_mono_modal_dice_scores_the_warped_labels():
    dice = _script("mono_modal_ceiling")._dice
    import torch

    labels = np.zeros((12, 10), dtype=np.int16)
    labels[2:6, 2:6], labels[6:10, 2:6], labels[2:10, 6:9] = 1, 2, 3
    shifted = np.roll(labels, 1, axis=0)  # the moving labels one row down
    zero = torch.zeros(1, 2, 12, 10)
    back = zero.clone()
    back[:, 0] = 1.0  # pull from one row further down: undoes the shift
    assert dice(shifted, labels, back) == 1.0
    # one row off: label 1 keeps 3 of 4 rows (Dice 0.75), label 2 too, label 3 7 of 8 (0.875)
    assert abs(dice(shifted, labels, zero) - (0.75 + 0.75 + 0.875) / 3) < 1e-9


def test_cascade_probe_starts_the_cascade_as_the_trained_single_pass(tiny_config):
    import torch

    from innreg.model import INNReg

    torch.manual_seed(0)
    single = INNReg(tiny_config.model)
    with torch.no_grad():
        single.registration.flow.weight.normal_(std=0.02)
    moving, fixed = torch.rand(1, 1, 16, 16), torch.rand(1, 1, 16, 16)
    expected = single(moving, fixed).ddf
    cascade = _script("cascade_probe").with_cascade(single, 2)
    (unet, flow), = cascade.registration.cascade
    for a, b in zip(unet.state_dict().values(), single.registration.unet.state_dict().values()):
        assert torch.equal(a, b)  # the second pass starts from the trained first pass's U-Net
    assert flow.weight.abs().max() < 1e-3  # and a tiny head: the cascade starts as the single pass
    with torch.no_grad():
        assert torch.allclose(cascade(moving, fixed).ddf, expected, atol=1e-3)
