"""Invertible translator (innreg.nn.translator)."""

from __future__ import annotations

import pytest
import torch

from innreg.config import SubnetKind
from innreg.nn.translator import INNTranslator

SHAPES = [(12, 14), (13, 15), (8, 10, 6), (7, 9, 5)]


def _small(dim: int, subnet: str) -> INNTranslator:
    return INNTranslator(dim=dim, n_blocks=3, hidden_channels=8, subnet=subnet, kernel_size=3)


def _train(model: INNTranslator, x: torch.Tensor, steps: int = 5) -> list[float]:
    """A few Adam steps towards a contrast inversion, so the couplings are no longer identities."""
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(steps):
        optimizer.zero_grad()
        loss = (model(x) - (1 - x)).abs().mean()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


@pytest.mark.parametrize("subnet", [SubnetKind.DDC, SubnetKind.CONV])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_inverse_recovers_input_after_training(shape, subnet):
    model = _small(len(shape), subnet)
    x = torch.rand(2, 1, *shape)
    losses = _train(model, x)
    assert losses[-1] < losses[0]
    with torch.no_grad():
        y = model(x)
        assert y.shape == x.shape
        assert (y - x).abs().max() > 0.1  # a real transform, not a near-identity
        assert (model.inverse(y) - x).abs().max() < 1e-4
        other = torch.rand(2, 1, *shape)  # and the other direction
        assert (model(model.inverse(other)) - other).abs().max() < 1e-4


@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_initial_translator_preserves_the_norm(shape):
    # Identity couplings + orthogonal 1x1 convs (identity in padded border cells): an orthogonal map.
    model = _small(len(shape), "ddc")
    x = torch.rand(3, 1, *shape)
    with torch.no_grad():
        y = model(x)
    torch.testing.assert_close(y.flatten(1).norm(dim=1), x.flatten(1).norm(dim=1))


def test_multichannel_input():
    model = INNTranslator(dim=2, in_channels=2, n_blocks=2, hidden_channels=8, kernel_size=3)
    for p in model.parameters():
        p.data.add_(0.1 * torch.randn_like(p))
    x = torch.rand(1, 2, 9, 10)
    with torch.no_grad():
        assert (model.inverse(model(x)) - x).abs().max() < 1e-4


def test_gradients_reach_every_parameter():
    model = INNTranslator(dim=2, n_blocks=2, hidden_channels=16, kernel_size=3)
    x = torch.rand(2, 1, 12, 14)
    _train(model, x, steps=2)  # the zero-initialised last layers open up after one step
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_log_scales_are_soft_clamped():
    model = INNTranslator(dim=2, n_blocks=1, hidden_channels=4, subnet="conv", kernel_size=3, clamp=0.5)
    with torch.no_grad():
        for net in (model.blocks[0].coupling.net1, model.blocks[0].coupling.net2):
            net.layers[-1].bias.fill_(1e4)  # huge raw scales and shifts
    x = torch.rand(1, 1, 8, 8)
    with torch.no_grad():
        y = model(x)
        assert torch.isfinite(y).all()
        assert (model.inverse(y) - x).abs().max() < 1e-2 * y.abs().max()


def test_rejects_wrong_shape():
    with pytest.raises(ValueError, match="spatial dims"):
        INNTranslator(dim=3)(torch.rand(1, 1, 8, 8))


@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_haar_squeeze_is_exactly_invertible_after_training(shape):
    model = INNTranslator(dim=len(shape), n_blocks=3, hidden_channels=8, subnet="conv", kernel_size=3, squeeze="haar")
    x = torch.rand(2, 1, *shape)
    with torch.no_grad():
        torch.testing.assert_close(model(x), x)  # identity at initialisation, as with the cell squeeze
    losses = _train(model, x)
    assert losses[-1] < losses[0]
    with torch.no_grad():
        y = model(x)
        assert (y - x).abs().max() > 0.1
        assert (model.inverse(y) - x).abs().max() < 1e-4


@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_latent_channels_keep_the_blocks_invertible(shape):
    model = INNTranslator(dim=len(shape), n_blocks=3, hidden_channels=8, kernel_size=3, squeeze="haar", latent_channels=1)
    x = torch.rand(2, 1, *shape)
    with torch.no_grad():
        torch.testing.assert_close(model(x), x)  # identity at initialisation, the latent channel stays zero
    losses = _train(model, x)
    assert losses[-1] < losses[0]
    assert not model.exact_inverse
    with torch.no_grad():
        assert model(x).shape == x.shape and model.inverse(x).shape == x.shape
        full = model._run(model._with_latents(x), reverse=False)
        assert full.shape == (2, 2, *shape)
        assert full[:, 1:].abs().max() > 1e-3  # the trained blocks write into the dropped channel
        # exact on all channels, so the image-level inverse is one only up to what the latent holds
        assert (model._run(full, reverse=True) - model._with_latents(x)).abs().max() < 1e-4
        torch.testing.assert_close(model(x), full[:, :1])


def test_rejects_negative_latent_channels():
    with pytest.raises(ValueError, match="latent_channels"):
        INNTranslator(dim=2, latent_channels=-1)
