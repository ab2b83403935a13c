"""Memory-saving invertible backprop (innreg.nn.reversible) against stored-activation autograd."""

from __future__ import annotations

import copy

import pytest
import torch

from innreg.nn.reversible import run_invertible
from innreg.nn.translator import INNTranslator

SHAPES = [(13, 15), (12, 14), (7, 9, 5), (8, 6, 10)]


def _perturbed(dim: int, subnet: str) -> INNTranslator:
    """A small translator with random (non-identity) weights, so every block does real work."""
    torch.manual_seed(0)
    model = INNTranslator(dim=dim, n_blocks=3, hidden_channels=8, subnet=subnet, kernel_size=3, memory_efficient=True)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.2 * torch.randn_like(p))
    return model.double()


def _grads(model: INNTranslator, x: torch.Tensor, target: torch.Tensor, reverse: bool):
    x = x.clone().requires_grad_(True)
    y = model.inverse(x) if reverse else model(x)
    loss = ((y - target) ** 2).sum() + y.abs().mean()
    model.zero_grad(set_to_none=True)
    loss.backward()
    return y.detach(), x.grad, {n: p.grad for n, p in model.named_parameters()}


@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "inverse"])
@pytest.mark.parametrize("subnet", ["ddc", "conv"])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_gradients_equal_stored_activation_version(shape, subnet, reverse):
    efficient = _perturbed(len(shape), subnet)
    stored = copy.deepcopy(efficient)
    stored.memory_efficient = False
    x = torch.rand(2, 1, *shape, dtype=torch.float64)
    target = torch.rand_like(x)
    y_e, gx_e, gp_e = _grads(efficient, x, target, reverse)
    y_s, gx_s, gp_s = _grads(stored, x, target, reverse)
    torch.testing.assert_close(y_e, y_s, rtol=0, atol=0)  # the same forward computation
    torch.testing.assert_close(gx_e, gx_s, rtol=1e-7, atol=1e-9)
    assert set(gp_e) == set(gp_s)
    assert sum(g.abs().sum().item() for g in gp_s.values() if g is not None) > 0
    for name in gp_s:
        assert (gp_e[name] is None) == (gp_s[name] is None), name
        if gp_s[name] is not None:
            torch.testing.assert_close(gp_e[name], gp_s[name], rtol=1e-7, atol=1e-9, msg=name)


def test_float32_gradients_match_within_inverse_rounding():
    model = _perturbed(3, "ddc").float()
    stored = copy.deepcopy(model)
    stored.memory_efficient = False
    x = torch.rand(1, 1, 9, 8, 7)
    target = torch.rand_like(x)
    _, gx_e, gp_e = _grads(model, x, target, False)
    _, gx_s, gp_s = _grads(stored, x, target, False)
    torch.testing.assert_close(gx_e, gx_s, rtol=1e-4, atol=1e-5)
    for name, g in gp_s.items():
        torch.testing.assert_close(gp_e[name], g, rtol=1e-3, atol=1e-5, msg=name)


def test_translator_still_inverts_exactly():
    model = _perturbed(3, "ddc").float()
    x = torch.rand(2, 1, 7, 9, 5, requires_grad=True)
    y = model(x)
    assert (y - x).abs().max() > 0.05
    assert (model.inverse(y) - x).abs().max() < 1e-4


def test_stores_only_the_output():
    """Counted with saved-tensor hooks: the blocks' activations are not kept for backward."""

    def saved_elements(model: INNTranslator, x: torch.Tensor) -> int:
        count = 0

        def pack(t: torch.Tensor) -> torch.Tensor:
            nonlocal count
            count += t.numel()
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            model(x)
        return count

    model = _perturbed(3, "ddc").float()
    x = torch.rand(1, 1, 16, 16, 16, requires_grad=True)
    stored = copy.deepcopy(model)
    stored.memory_efficient = False
    efficient_count, stored_count = saved_elements(model, x), saved_elements(stored, x)
    assert efficient_count < 0.1 * stored_count


def test_steps_compose_to_the_blocks_without_gradients():
    model = _perturbed(2, "conv").float()
    z = torch.rand(1, 4, 5, 6)
    steps = [step for block in model.blocks for step in block.steps()]
    with torch.no_grad():
        y = run_invertible(steps, z, memory_efficient=True)
        expected = z
        for block in model.blocks:
            expected = block(expected)
        back = run_invertible(steps, y, reverse=True)
    assert not y.requires_grad
    torch.testing.assert_close(y, expected, rtol=0, atol=0)
    torch.testing.assert_close(back, z, rtol=1e-5, atol=1e-5)
