"""Residual U-Net translator (innreg.nn.unet_translator): local, so the stages may train it on crops
(shape and gradients: tests/nn/test_gan_nets.py)."""

from __future__ import annotations

import torch

from innreg.nn import UNetTranslator


def test_unet_translator_is_local():
    # The stages train a local translator on crops: a change far away must not reach a voxel. The
    # default widths' receptive field spans about 50 voxels either side.
    torch.manual_seed(0)
    net = UNetTranslator(2).eval()
    x = torch.rand(1, 1, 128, 128)
    changed = x.clone()
    changed[0, 0, 8, 8] += 1.0
    with torch.no_grad():
        a, b = net(x), net(changed)
    assert not torch.equal(a[..., :16, :16], b[..., :16, :16])
    torch.testing.assert_close(a[..., 96:, 96:], b[..., 96:, 96:], rtol=0, atol=0)
    assert UNetTranslator.local
