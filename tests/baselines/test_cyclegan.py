from __future__ import annotations

import numpy as np
import pytest
import torch

from innreg.baselines import make_method
from innreg.data import load_pair, read_manifest
from innreg.errors import InnregInputError
from innreg.inference import load_model


def test_cyclegan_voxelmorph_fits_two_steps_registers_and_reloads(phantom, tiny_config, tmp_path):
    method = make_method("cyclegan-voxelmorph", dim=2, config=tiny_config)
    info = method.fit(phantom["train"], tmp_path, steps=2, device="cpu", progress=False)
    assert info.train_seconds > 0 and info.peak_memory_mb > 0
    for name in ("model.pt", "cyclegan_checkpoint.pt", "registration_checkpoint.pt"):
        assert (tmp_path / name).is_file()
    saved = torch.load(tmp_path / "model.pt", weights_only=False)
    assert saved["info"]["steps"] == 2 and saved["info"]["gan_steps"] == 1
    assert saved["config"]["model"]["translator"] == "resnet"

    moving, fixed, moving_seg, _ = load_pair(read_manifest(phantom["test"])[0])
    result = method.register(moving.array, fixed.array, moving_seg.array)
    assert result.ddf.shape == (2, 32, 32) and np.isfinite(result.ddf).all()
    assert result.warped.shape == result.translated.shape == result.warped_seg.shape == (32, 32)
    assert set(np.unique(result.warped_seg)) <= set(np.unique(moving_seg.array))

    # The saved model is a plain innreg model whose translator is G_AB of stage 1.
    stage1 = torch.load(tmp_path / "cyclegan_checkpoint.pt", weights_only=False)["parts"]["generators"]
    translator = load_model(tmp_path / "model.pt", "cpu").model.translator.state_dict()
    for key, value in translator.items():
        torch.testing.assert_close(value, stage1[f"0.{key}"])

    # A second fit finds the finished model and does not train again.
    before = (tmp_path / "model.pt").stat().st_mtime_ns
    again = make_method("cyclegan-voxelmorph", dim=2, config=tiny_config).fit(phantom["train"], tmp_path, 2, "cpu", False)
    assert (tmp_path / "model.pt").stat().st_mtime_ns == before
    assert again.train_seconds == info.train_seconds

    # A model trained under another config is never silently reused.
    other = tiny_config.updated(model={"resnet_blocks": 2})
    with pytest.raises(InnregInputError, match="another config"):
        make_method("cyclegan-voxelmorph", dim=2, config=other).fit(phantom["train"], tmp_path, 2, "cpu", False)
