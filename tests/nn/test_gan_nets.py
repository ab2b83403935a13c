"""Non-invertible translators (ResNet, U-Net) and the PatchGAN discriminator (innreg.nn.resnet,
innreg.nn.unet_translator, innreg.nn.discriminator)."""

from __future__ import annotations

import pytest
import torch

from innreg.nn.discriminator import PatchDiscriminator
from innreg.nn.resnet import ResNetTranslator
from innreg.nn.unet_translator import UNetTranslator

SMALL_TRANSLATORS = {
    "resnet": lambda dim: ResNetTranslator(dim, channels=4, n_blocks=2),
    "unet": lambda dim: UNetTranslator(dim, encoder=(4, 4), decoder=(4, 4, 4)),
}


@pytest.mark.parametrize("kind", sorted(SMALL_TRANSLATORS))
@pytest.mark.parametrize("shape", [(13, 15), (7, 9, 5), (4, 4)], ids=str)
def test_translator_keeps_shape_and_learns(shape, kind):
    net = SMALL_TRANSLATORS[kind](len(shape))
    x = torch.rand(2, 1, *shape)
    y = net(x)
    assert y.shape == x.shape and y.is_contiguous()
    y.square().mean().backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


@pytest.mark.parametrize(
    ("shape", "patches"),
    [((16, 16), (1, 1)), ((64, 48), (6, 4)), ((8, 10, 6), (1, 1, 1)), ((32, 32, 24), (2, 2, 1))],
    ids=str,
)
def test_discriminator_patch_grid(shape, patches):
    # Each of the 3 stride-2 convs floors the size by 2, each of the 2 stride-1 convs removes 1.
    net = PatchDiscriminator(len(shape), channels=4, n_layers=3)
    out = net(torch.rand(2, 1, *shape))
    assert out.shape == (2, 1, *patches)
    out.mean().backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_networks_reject_wrong_channels():
    with pytest.raises(ValueError, match="expected"):
        ResNetTranslator(2)(torch.rand(1, 2, 8, 8))
    with pytest.raises(ValueError, match="expected"):
        UNetTranslator(2)(torch.rand(1, 2, 16, 16))
    with pytest.raises(ValueError, match="expected"):
        PatchDiscriminator(3)(torch.rand(1, 1, 8, 8))


@pytest.mark.parametrize("dim", [2, 3])
def test_blurred_critic_is_blind_to_voxel_noise(dim):
    # A +-0.2 checkerboard (the highest frequency a grid holds) on a smooth image: a sharp critic's
    # logits move with it, a critic behind a sigma-2 Gaussian barely sees it (inside the image the
    # Gaussian removes it; the borders and instance norm leave a trace), while a change of contrast
    # still moves its logits.
    torch.manual_seed(0)
    shape = (32,) * dim
    grids = torch.meshgrid(*[torch.arange(s) for s in shape], indexing="ij")
    smooth = sum(torch.sin(g / 5.0) for g in grids)[None, None] / dim * 0.4 + 0.5
    checker = (sum(grids) % 2 * 2 - 1)[None, None] * 0.2
    sharp = PatchDiscriminator(dim, channels=4, n_layers=2)
    blurred = PatchDiscriminator(dim, channels=4, n_layers=2, blur_sigma=2.0)
    blurred.load_state_dict(sharp.state_dict())
    with torch.no_grad():
        def moved(net, other):
            return (net(other) - net(smooth)).abs().mean().item()

        assert moved(blurred, smooth + checker) < 0.05 * moved(sharp, smooth + checker)
        assert moved(blurred, 1.0 - smooth) > 1e-2
    with pytest.raises(ValueError, match="blur_sigma"):
        PatchDiscriminator(dim, blur_sigma=-1.0)
