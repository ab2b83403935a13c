"""``innreg info``: model files and NIfTI images described as innreg reads them."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
import torch

import innreg
from innreg.cli import main
from innreg.config import Config
from innreg.data import load_labels
from innreg.describe import describe_file, describe_image, describe_model
from innreg.errors import InnregInputError
from innreg.model import INNReg
from innreg.model_file import save_model

TINY = {"model": {"inn_blocks": 1, "inn_hidden": 4, "unet_encoder": [4, 4], "unet_decoder": [4, 4, 4]}}


@pytest.fixture
def model_file(tmp_path):
    config = Config.from_dict(TINY).updated(refine={"translation_weight": 2.5})
    model = INNReg(config.model)
    path = tmp_path / "model.pt"
    save_model(model, config, path, {"steps": 3, "n_pairs": 2, "train_seconds": 90.0})
    return path, model


def _save(tmp_path, name: str, array: np.ndarray, affine: np.ndarray) -> str:
    path = tmp_path / name
    nib.save(nib.Nifti1Image(array, affine), path)
    return str(path)


def test_model_facts_come_from_the_file(model_file):
    path, model = model_file
    facts = describe_model(path)
    assert facts["kind"] == "model" and facts["dim"] == 2
    assert facts["written_by"] == {"innreg_version": innreg.__version__, "torch_version": str(torch.__version__)}
    assert facts["translator"] == {"kind": "inn", "blocks": 1, "hidden": 4, "squeeze": "haar"}
    assert facts["guide"] is None
    assert facts["training"] == {"steps": 3, "n_pairs": 2, "minutes": 1.5}
    assert facts["refinement"]["enabled"] and facts["refinement"]["translation_weight"] == 2.5
    # Weights counted per network, all of them.
    expected = {name: sum(p.numel() for p in part.state_dict().values()) for name, part in model.named_children()}
    assert facts["parameters"] == expected
    assert sum(expected.values()) == sum(t.numel() for t in model.state_dict().values())


def test_model_without_refinement_or_training_info(tmp_path):
    config = Config.from_dict(TINY).updated(refine={"enabled": False})
    path = tmp_path / "model.pt"
    save_model(INNReg(config.model), config, path)
    facts = describe_model(path)
    assert facts["refinement"] == {"enabled": False} and facts["training"] is None


def test_model_whose_weights_do_not_fit_is_refused(model_file):
    path, model = model_file
    saved = torch.load(path, weights_only=True)
    saved["state_dict"].pop(next(iter(saved["state_dict"])))
    torch.save(saved, path)
    with pytest.raises(InnregInputError, match="weights do not match"):
        describe_model(path)


def test_image_geometry_is_the_arrays_innreg_registers(tmp_path):
    # A 2D slice stored as H x 1 x W with 0.5 x 3 x 2 mm voxels, axes flipped to L, S (the squeezed one), P.
    affine = np.array([[-0.5, 0, 0, 10], [0, 0, -2, 20], [0, 3, 0, 30], [0, 0, 0, 1.0]])
    array = np.linspace(-1, 1, 12 * 8, dtype=np.float32).reshape(12, 1, 8)
    facts = describe_image(_save(tmp_path, "slice.nii.gz", array, affine))
    assert facts["kind"] == "image" and facts["disk_shape"] == [12, 1, 8]
    assert facts["dim"] == 2 and facts["shape"] == [12, 8]
    assert facts["spacing_mm"] == [0.5, 2.0] and facts["orientation"] == "LP"
    assert facts["origin_mm"] == [10.0, 20.0, 30.0]
    assert facts["range"] == [-1.0, 1.0] and facts["hounsfield"] is False
    low, high = np.percentile(array, [1, 99])
    assert facts["percentiles_1_99"] == [round(float(low), 4), round(float(high), 4)]


def test_ct_in_hounsfield_units_is_recognised(tmp_path):
    array = np.full((16, 16, 16), -1000.0, dtype=np.float32)
    array[4:12, 4:12, 4:12] = 40.0
    facts = describe_image(_save(tmp_path, "ct.nii", array, np.eye(4)))
    assert facts["dim"] == 3 and facts["orientation"] == "RAS" and facts["hounsfield"] is True


def test_label_map_counts_voxels_per_label(tmp_path):
    labels = np.zeros((6, 5), dtype=np.uint8)
    labels[0, :2], labels[3] = 1, 3
    facts = describe_image(_save(tmp_path, "seg.nii.gz", labels, np.eye(4)))
    assert facts["kind"] == "label map" and facts["label_voxels"] == {1: 2, 3: 5} and "range" not in facts


def test_header_intent_decides_the_kind_over_the_values(tmp_path):
    atlas = np.arange(200, dtype=np.int16).reshape(20, 10)  # more labels than the values' rule allows
    grey = np.array([[0, 4, 8], [4, 8, 0]], dtype=np.uint8)  # few grey levels, read as labels without an intent
    images = {name: nib.Nifti1Image(array, np.eye(4)) for name, array in [("atlas", atlas), ("grey", grey)]}
    images["atlas"].header.set_intent("label")
    images["grey"].header.set_intent("estimate")
    for name, image in images.items():
        nib.save(image, tmp_path / f"{name}.nii")
    atlas_facts = describe_image(tmp_path / "atlas.nii")
    assert atlas_facts["kind"] == "label map" and len(atlas_facts["label_voxels"]) == 199
    grey_facts = describe_image(tmp_path / "grey.nii")
    assert grey_facts["kind"] == "image" and grey_facts["range"] == [0.0, 8.0]
    assert describe_image(_save(tmp_path, "plain.nii", grey, np.eye(4)))["kind"] == "label map"


def test_a_label_map_by_its_header_with_fractional_values_is_refused_as_register_refuses_it(tmp_path):
    image = nib.Nifti1Image(np.array([[0.0, 1.5], [2.0, 1.0]], dtype=np.float32), np.eye(4))
    image.header.set_intent("label")
    nib.save(image, tmp_path / "soft.nii")
    with pytest.raises(InnregInputError, match=r"soft.nii: label map has non-integer values \(e.g. 1.5\)"):
        describe_image(tmp_path / "soft.nii")
    with pytest.raises(InnregInputError, match="soft.nii: label map has non-integer values"):
        load_labels(tmp_path / "soft.nii")


def test_file_kind_is_picked_by_name_and_others_are_refused(tmp_path, model_file):
    assert describe_file(model_file[0])["kind"] == "model"
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(InnregInputError, match="notes.txt: not a model file"):
        describe_file(tmp_path / "notes.txt")
    with pytest.raises(InnregInputError, match="missing.nii.gz: image file not found"):
        describe_file(tmp_path / "missing.nii.gz")
    with pytest.raises(InnregInputError, match="missing.pt: model file not found"):
        describe_file(tmp_path / "missing.pt")


def test_cli_prints_each_file_and_json(tmp_path, model_file, capsys):
    seg = _save(tmp_path, "seg.nii.gz", np.eye(5, dtype=np.uint8) * 2, np.diag([0.8, 0.8, 1, 1]))
    assert main(["info", str(model_file[0]), seg]) == 0
    text = capsys.readouterr().out
    assert f"{model_file[0]}\n  kind: model\n" in text
    assert "  shape: 5 x 5\n" in text and "  spacing_mm: 0.8 x 0.8\n" in text and "  label_voxels: 2 5\n" in text
    assert main(["info", "--json", seg]) == 0
    assert json.loads(capsys.readouterr().out) == {seg: describe_image(seg) | {"label_voxels": {"2": 5}}}


def test_cli_bad_file_gives_one_line_and_status_2(tmp_path, model_file, capsys):
    (tmp_path / "broken.nii.gz").write_bytes(b"not an image")
    assert main(["info", str(model_file[0]), str(tmp_path / "broken.nii.gz")]) == 2
    captured = capsys.readouterr()
    assert captured.out == "", "nothing printed before the bad file is found"
    assert captured.err.count("\n") == 1 and "broken.nii.gz" in captured.err
