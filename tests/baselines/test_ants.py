from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

pytest.importorskip("ants")

from innreg.baselines import make_method  # noqa: E402
from innreg.errors import InnregInputError  # noqa: E402

SHIFT = (3.0, -2.0)


def _blobs(shape=(48, 40)) -> np.ndarray:
    yy, xx = np.mgrid[: shape[0], : shape[1]].astype(np.float64)
    return np.exp(-(((yy - 22) / 7) ** 2 + ((xx - 18) / 5) ** 2)) + 0.6 * np.exp(-(((yy - 30) / 4) ** 2 + ((xx - 26) / 6) ** 2))


@pytest.mark.parametrize("name", ["ants-syn", "ants-syn-cc"])
def test_ants_recovers_a_translation_in_innreg_convention(name):
    fixed = _blobs()
    # moving(x) = fixed(x - s), so the pull-back field that maps moving onto fixed is u = +s.
    moving_anatomy = ndimage.shift(fixed, SHIFT, order=3)
    moving = 1.0 - moving_anatomy  # another "modality": inverted contrast
    moving_seg = (moving_anatomy > 0.3).astype(np.uint8) + (moving_anatomy > 0.7)
    fixed_seg = (fixed > 0.3).astype(np.uint8) + (fixed > 0.7)

    result = make_method(name, dim=2).register(moving, fixed, moving_seg)

    inside = fixed > 0.3
    assert result.ddf.shape == (2, 48, 40)
    np.testing.assert_allclose(result.ddf[:, inside].mean(axis=1), SHIFT, atol=0.3)
    np.testing.assert_allclose(result.inverse_ddf[:, ndimage.shift(inside, SHIFT, order=0)].mean(axis=1), np.negative(SHIFT), atol=0.3)
    assert result.warped_seg.dtype == np.uint8
    assert set(np.unique(result.warped_seg)) <= {0, 1, 2}
    assert (result.warped_seg == fixed_seg).mean() > 0.97
    assert np.corrcoef(result.warped[inside], fixed[inside])[0, 1] < -0.95  # contrast kept, anatomy aligned
    assert 0.0 < result.seconds


@pytest.mark.parametrize("name", ["ants-syn", "ants-syn-cc"])
def test_ants_starts_right_on_mostly_negative_images(name):
    """CT in HU is mostly negative; with its "mass" summing to nearly zero, ANTs' centre-of-mass start
    on the raw values lands outside the image ("All samples map outside moving image buffer")."""
    fixed = _blobs()
    moving_anatomy = ndimage.shift(fixed, SHIFT, order=3)

    def hu(image):
        return 1000.0 * (image - image.mean()) + 0.01

    moving = hu(1.0 - moving_anatomy)
    result = make_method(name, dim=2).register(moving, hu(fixed), (moving_anatomy > 0.3).astype(np.uint8))

    inside = fixed > 0.3
    np.testing.assert_allclose(result.ddf[:, inside].mean(axis=1), SHIFT, atol=0.3)
    assert ((result.warped_seg > 0) == inside).mean() > 0.97
    assert np.corrcoef(result.warped[inside], fixed[inside])[0, 1] < -0.95
    assert moving.min() - 1 <= result.warped.min() and result.warped.max() <= moving.max() + 1  # the image's own values


def test_the_two_recipes_ask_ants_for_their_own_metrics():
    assert make_method("ants-syn").registration_arguments()["syn_metric"] == "mattes"
    assert make_method("ants-syn-cc").registration_arguments() == {"type_of_transform": "antsRegistrationSyN[s]"}


@pytest.mark.parametrize("name", ["ants-syn", "ants-syn-cc"])
def test_the_start_is_ants_default_unless_asked(name):
    assert "initial_transform" not in make_method(name).registration_arguments()  # ANTs' centre of mass
    assert make_method(name, start="identity").registration_arguments()["initial_transform"] == "Identity"
    with pytest.raises(InnregInputError, match="start 'moments'"):
        make_method(name, start="moments")


def test_ants_refuses_a_schedule_that_skips_the_finest_level():
    with pytest.raises(InnregInputError, match="finest level"):
        make_method("ants-syn", reg_iterations=(40, 20, 0))


def test_missing_antspyx_is_a_clear_input_error(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_ants(name, *args, **kwargs):
        if name == "ants":
            raise ImportError("No module named 'ants'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ants)
    with pytest.raises(InnregInputError, match="antspyx"):
        make_method("ants-syn")


def test_ants_random_seed_is_set_for_the_call_and_yields_to_the_users(monkeypatch):
    import os

    from innreg.baselines.ants import ants_random_seed

    monkeypatch.delenv("ANTS_RANDOM_SEED", raising=False)
    with ants_random_seed(5):
        assert os.environ["ANTS_RANDOM_SEED"] == "5"
    assert "ANTS_RANDOM_SEED" not in os.environ
    monkeypatch.setenv("ANTS_RANDOM_SEED", "11")
    with ants_random_seed(5):
        assert os.environ["ANTS_RANDOM_SEED"] == "11"
    assert os.environ["ANTS_RANDOM_SEED"] == "11"
