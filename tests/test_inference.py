"""``RegistrationModel.register``: how it prepares a pair's images for the networks and the refinement."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from innreg.config import Config
from innreg.core.transform import Transform
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


@pytest.mark.parametrize("air", [-1000.0, 0.0])
def test_register_warps_in_air_from_outside_the_moving_grid(monkeypatch, air):
    """A map that pulls from outside the moving grid: CT in HU reads air there (0 would be water), MR reads 0."""
    config = Config.from_dict(TINY).updated(model={"dim": 2}, refine={"enabled": False})
    model = RegistrationModel(INNReg(config.model), config, torch.device("cpu"), translate=False)

    def shift_by_four_rows(pair, on_stage=None):
        ddf = torch.zeros(1, 2, 32, 32)
        ddf[:, 0] = 4.0  # warped(x) = moving(x + 4 rows): the last four rows come from outside
        return Transform(ddf, torch.zeros_like(ddf))

    monkeypatch.setattr("innreg.inference.registration_chain", lambda *args: shift_by_four_rows)
    moving = np.full((32, 32), air, np.float32)
    moving[8:24, 8:24] = 40.0 if air else 500.0  # soft tissue in HU, or an MR head
    warped = model.register(moving, np.ones((32, 32), np.float32)).warped
    np.testing.assert_allclose(warped[:4], moving[4:8], atol=1e-3)
    np.testing.assert_allclose(warped[28:], air, atol=1e-3)


def test_in_fixed_units_undoes_the_fixed_images_mapping():
    config = Config.from_dict(TINY).updated(model={"dim": 2}, refine={"enabled": False})
    model = RegistrationModel(INNReg(config.model), config, torch.device("cpu"))
    ramp = np.linspace(0.0, 1.0, 32 * 32, dtype=np.float32).reshape(32, 32)
    ct = -1000.0 + 2500.0 * ramp  # -1000 (air) to 1500 HU: the curve's whole range
    np.testing.assert_allclose(model.in_fixed_units(normalize_intensity(ct, hu_curve=True), ct), ct, atol=0.05)
    mr = 100.0 + 900.0 * ramp
    mask = mr > 300.0
    back = model.in_fixed_units(normalize_percentile(mr, mask=mask), mr, mask)
    lo, hi = np.percentile(mr[mask], [1, 99])
    inside = (mr >= lo) & (mr <= hi)  # the percentiles clip outside, so only their span comes back
    np.testing.assert_allclose(back[inside], mr[inside], rtol=1e-5)
    np.testing.assert_allclose(back[~inside & (mr < lo)], lo, rtol=1e-5)
