import math

import pytest
import torch

from innreg.core.affine import affine_ddf, invert_affine
from innreg.core.filters import gaussian_smooth
from innreg.nn import warp
from innreg.nn.affine import AffineNet
from innreg.nn.registration import RegistrationNet
from innreg.core.warp import compose


@pytest.mark.parametrize("pool, hidden", [(4, 64), (1, 0)])
def test_affine_net_starts_at_identity_and_is_orientation_preserving(pool, hidden):
    net = AffineNet(dim=3, pool=pool, hidden=hidden)
    a, t = net(torch.rand(2, 1, 9, 10, 11), torch.rand(2, 1, 9, 10, 11))
    assert torch.allclose(a, torch.eye(3).expand(2, 3, 3)) and torch.all(t == 0)
    with torch.no_grad():
        (net.head[-1] if hidden else net.head).bias.normal_(0, 0.5)
    a, _ = net(torch.rand(1, 1, 9, 10, 11), torch.rand(1, 1, 9, 10, 11))
    assert torch.linalg.det(a).item() > 0


def test_affine_net_takes_any_size_with_one_head():
    net = AffineNet(dim=2, pool=4, hidden=8)
    for shape in ((8, 8), (37, 64), (224, 192)):
        a, t = net(torch.rand(1, 1, *shape), torch.rand(1, 1, *shape))
        assert a.shape == (1, 2, 2) and t.shape == (1, 2)


def _rotated_pairs(n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``n`` 64x64 pairs: a smooth random image (fixed) and its random rotation (up to 15 degrees)
    with a shift (up to 3 voxels), and the field that aligns the moving image to the fixed one."""
    shape = (64, 64)
    fixed = gaussian_smooth(torch.rand(n, 1, *shape, generator=generator), 3.0)
    fixed = (fixed - fixed.amin((2, 3), keepdim=True)) / (fixed.amax((2, 3), keepdim=True) - fixed.amin((2, 3), keepdim=True))
    angle = (torch.rand(n, generator=generator) * 2 - 1) * math.radians(15)
    c, s = torch.cos(angle), torch.sin(angle)
    matrix = torch.stack([torch.stack([c, -s], -1), torch.stack([s, c], -1)], -2)
    shift = (torch.rand(n, 2, generator=generator) * 2 - 1) * 3
    moving = warp(fixed, affine_ddf(matrix, shift, shape))
    return moving, fixed, affine_ddf(*invert_affine(matrix, shift), shape)


def _fit_rotations(net: AffineNet, steps: int, generator: torch.Generator) -> None:
    """Adam steps (lr 3e-3) of ``net`` on batches of 4 :func:`_rotated_pairs`, field error to the truth."""
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    for _ in range(steps):
        moving, fixed, truth = _rotated_pairs(4, generator)
        loss = (affine_ddf(*net(moving, fixed), (64, 64)) - truth).pow(2).sum(1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()


def test_pooled_grid_head_learns_rotations_that_global_pooling_cannot():
    """The cause of issue 13's idle affine stage: after global average pooling the head cannot tell
    where a local shift is, so a rotation (shifts that turn with the position) is out of its reach."""
    errors = {}
    for pool, hidden in ((1, 0), (4, 64)):
        torch.manual_seed(0)
        net = AffineNet(dim=2, channels=(8, 16, 16, 16), pool=pool, hidden=hidden)
        _fit_rotations(net, 150, torch.Generator().manual_seed(0))
        moving, fixed, truth = _rotated_pairs(16, torch.Generator().manual_seed(1))
        with torch.no_grad():
            errors[pool] = (affine_ddf(*net(moving, fixed), (64, 64)) - truth).pow(2).sum(1).mean().sqrt().item()
    identity = truth.pow(2).sum(1).mean().sqrt().item()
    assert errors[4] < 0.5 * errors[1] and errors[4] < 0.3 * identity, (errors, identity)


def test_registration_with_affine_stage_recovers_a_shift_after_training():
    torch.manual_seed(0)
    x = torch.zeros(1, 1, 32, 32)
    x[..., 10:22, 8:20] = 1.0
    fixed = warp(x, torch.full((1, 2, 32, 32), 2.0))  # content moves by -2 voxels on both axes
    net = RegistrationNet(dim=2, encoder=(8, 8), decoder=(8, 8, 8), affine=True)
    opt = torch.optim.Adam(net.parameters(), lr=5e-3)
    for _ in range(60):
        out = net(x, fixed, with_inverse=False)
        loss = ((warp(x, out.ddf) - fixed) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    out = net(x, fixed)
    assert ((warp(x, out.ddf) - fixed) ** 2).mean() < 0.25 * ((x - fixed) ** 2).mean()
    assert out.affine is not None and out.local_ddf.shape == out.ddf.shape
    # inverse_ddf undoes ddf inside the image
    roundtrip = compose(out.inverse_ddf, out.ddf)
    assert roundtrip[..., 4:-4, 4:-4].abs().max() < 0.2


@pytest.mark.parametrize("slope", [0.0, 0.2])
def test_head_whose_hidden_units_were_all_pushed_negative_recovers_only_when_they_leak(slope):
    """The joint steps of two of three default trainings left every ReLU unit of the head negative for
    every pair: the stage then predicts one map for all pairs and gets no gradient to learn from again.
    Leaky units keep a gradient and learn their way back."""
    torch.manual_seed(0)
    net = AffineNet(dim=2, channels=(8, 16, 16, 16), pool=4, hidden=16, slope=slope)
    generator = torch.Generator().manual_seed(0)
    moving, fixed, truth = _rotated_pairs(16, torch.Generator().manual_seed(1))
    with torch.no_grad():  # every unit negative for every input, by a margin: what a dead head looks like
        hidden = net.head[0](net.pool(net.encoder(torch.cat([moving, fixed], 1))).flatten(1))
        net.head[0].bias -= hidden.amax(0) + 0.1  # over 100x the units' spread over the pairs
        before = (affine_ddf(*net(moving, fixed), (64, 64)) - truth).pow(2).sum(1).mean().item()
    _fit_rotations(net, 200, generator)
    with torch.no_grad():
        matrix, translation = net(moving, fixed)
        after = (affine_ddf(matrix, translation, (64, 64)) - truth).pow(2).sum(1).mean().item()
    if slope == 0:  # no gradient reaches the encoder or the hidden layer: one map for every pair
        assert matrix.std(0).max() < 1e-6 and translation.std(0).max() < 1e-6
    else:
        assert matrix.std(0).max() > 1e-2 and after < 0.2 * before, (before, after)
