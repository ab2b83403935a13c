"""SliceWise: a 2D translator run on every slice of a 3D image."""

from __future__ import annotations

import pytest
import torch

from innreg.nn import INNTranslator, ResNetTranslator, SliceWise


def _inn2d() -> INNTranslator:
    torch.manual_seed(0)
    inn = INNTranslator(dim=2, in_channels=1, n_blocks=2, hidden_channels=8)
    with torch.no_grad():  # away from the identity it starts as
        for p in inn.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return inn


def test_each_slice_across_the_last_axis_is_the_2d_translation_of_that_slice():
    inn = _inn2d().eval()
    x = torch.rand(2, 1, 10, 9, 4)
    y = SliceWise(inn)(x)
    assert y.shape == x.shape
    for k in range(x.shape[-1]):
        torch.testing.assert_close(y[..., k], inn(x[..., k]))
    assert not torch.allclose(y, x)


def test_an_invertible_2d_translator_stays_exactly_invertible():
    guide = SliceWise(_inn2d().eval())
    x = torch.rand(1, 1, 7, 6, 5)  # odd sizes: the INN pads each slice
    assert guide.exact_inverse
    torch.testing.assert_close(guide.inverse(guide(x)), x, atol=1e-5, rtol=0)


def test_the_wrapper_has_an_inverse_and_is_local_only_when_the_2d_module_is():
    guide = SliceWise(ResNetTranslator(dim=2, in_channels=1, channels=4, n_blocks=1))
    assert not hasattr(guide, "inverse") and not guide.local and not guide.exact_inverse
    assert SliceWise(_inn2d()).local


def test_a_2d_image_is_refused_with_its_shape():
    with pytest.raises(ValueError, match=r"expected a 3D image \(N, C, X, Y, Z\), got shape \(1, 1, 8, 8\)"):
        SliceWise(_inn2d())(torch.rand(1, 1, 8, 8))
