"""``RegistrationModel.register``: how it prepares a pair's images for the networks and the refinement."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from innreg.config import Config
from innreg.data import normalize_intensity, normalize_percentile
from innreg.inference import RegistrationModel
from innreg.model import INNReg

from .conftest import TINY


@pytest.mark.parametrize("hu_curve", [True, False])
def test_register_maps_ct_in_hu_as_the_model_was_trained(hu_curve):
    config = Config.from_dict(TINY).updated(model={"dim": 2, "hu_curve": hu_curve}, refine={"enabled": False})
    model = RegistrationModel(INNReg(config.model), config, torch.device("cpu"), translate=False)
    ramp = np.linspace(0.0, 1.0, 32 * 32, dtype=np.float32).reshape(32, 32)
    ct = -1000.0 + 2200.0 * ramp  # -1000 (air) to 1200 HU
    result = model.register(ct, ramp)
    # without the translator, `translated` is the moving image as the networks and the refinement saw it
    expected = normalize_intensity(ct, hu_curve=True) if hu_curve else normalize_percentile(ct)
    np.testing.assert_allclose(result.translated, expected, atol=1e-6)
    assert not np.allclose(normalize_intensity(ct, hu_curve=True), normalize_percentile(ct))
