"""The stage contract and its composer: maps chain like warps do, inverses in reverse order."""

from __future__ import annotations

import math

import pytest
import torch

from innreg.chain import StageChain, StagePair, stage_name
from innreg.core.affine import affine_ddf
from innreg.core.transform import Transform
from innreg.core.warp import compose, integrate_velocity, resize_field, warp


def _rotation(angle: float) -> torch.Tensor:
    c, s = math.cos(angle), math.sin(angle)
    return torch.tensor([[[c, -s], [s, c]]])


def _smooth_velocity(shape, scale: float, seed: int) -> torch.Tensor:
    coarse = torch.randn(1, 2, 4, 4, generator=torch.Generator().manual_seed(seed)) * scale
    return torch.nn.functional.interpolate(coarse, size=shape, mode="bicubic", align_corners=True)


def _interior(x: torch.Tensor, margin: int) -> torch.Tensor:
    return x[..., margin:-margin, margin:-margin]


class _Fixed:
    """A stage that always returns one map and records the pairs it was shown."""

    def __init__(self, transform: Transform) -> None:
        self.transform, self.seen = transform, []

    def __call__(self, pair: StagePair, with_inverse: bool) -> Transform:
        self.seen.append(pair)
        return self.transform if with_inverse else Transform(self.transform.ddf)


def test_then_warps_like_two_warps_and_inverts_in_reverse_order():
    shape = (40, 36)
    v1, v2 = _smooth_velocity(shape, 1.5, 0), _smooth_velocity(shape, 1.5, 1)
    first = Transform(integrate_velocity(v1), integrate_velocity(-v1))
    second = Transform(integrate_velocity(v2), integrate_velocity(-v2))
    both = first.then(second)
    y, x = torch.meshgrid(torch.arange(shape[0]) / 5.0, torch.arange(shape[1]) / 6.0, indexing="ij")
    image = (torch.sin(y) * torch.cos(x))[None, None]  # smooth: two linear interpolations agree with one
    two_warps = warp(warp(image, first.ddf), second.ddf)
    assert (_interior(warp(image, both.ddf) - two_warps, 6)).abs().max() < 0.02
    # map o inverse = identity inside the grid
    assert _interior(compose(both.ddf, both.inverse), 6).abs().max() < 0.05


def test_then_after_an_affine_map_is_exact_where_points_leave_the_grid():
    shape = (24, 20)
    matrix, shift = _rotation(0.2), torch.tensor([[4.0, -3.0]])
    affine = Transform.from_affine(matrix, shift, shape)
    inner = torch.full((1, 2, *shape), 6.0)  # pushes every point 6 voxels out along both axes
    exact = affine_ddf(matrix, shift, shape, inner=inner)
    torch.testing.assert_close(affine.then(Transform(inner)).ddf, exact)
    # the interpolating composition is wrong near the border (it clamps the points to the grid)
    interpolated = Transform(affine.ddf).then(Transform(inner)).ddf
    assert (interpolated - exact).abs().max() > 1.0


def test_inverse_is_none_unless_both_maps_have_one():
    shape = (8, 8)
    with_inverse = Transform.identity(torch.zeros(1, 1, *shape))
    without = Transform(torch.zeros(1, 2, *shape))
    assert with_inverse.then(without).inverse is None and without.then(with_inverse).inverse is None
    assert with_inverse.then(with_inverse).inverse is not None


def test_resized_affine_keeps_the_map_exactly():
    small, large = (13, 11), (49, 41)
    affine = Transform.from_affine(_rotation(0.3) * 1.1, torch.tensor([[1.5, -0.5]]), small)
    resized = affine.resized(large)
    torch.testing.assert_close(resized.ddf, resize_field(affine.ddf, large), atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(resized.inverse, resize_field(affine.inverse, large), atol=1e-4, rtol=1e-4)
    assert resized.affine is not None


def test_chain_shows_each_stage_the_pair_warped_by_the_stages_before():
    shape = (16, 16)
    moving = torch.rand(1, 2, *shape)
    fixed = torch.rand(1, 1, *shape)
    mask = torch.ones(1, 1, *shape)
    shift = Transform(torch.full((1, 2, *shape), 1.0), torch.full((1, 2, *shape), -1.0))
    first, second = _Fixed(shift), _Fixed(Transform.identity(fixed))
    total = StageChain([first, second])(StagePair(moving, fixed, moving_mask=mask))
    assert first.seen[0].moving is moving
    torch.testing.assert_close(second.seen[0].moving, warp(moving, shift.ddf))
    torch.testing.assert_close(second.seen[0].moving_mask, warp(mask, shift.ddf))
    assert second.seen[0].fixed is fixed
    torch.testing.assert_close(total.ddf, shift.ddf)
    torch.testing.assert_close(total.inverse, shift.inverse)


def test_chain_starts_from_a_given_map_and_an_empty_chain_is_the_identity():
    shape = (12, 10)
    pair = StagePair(torch.rand(1, 1, *shape), torch.rand(1, 1, *shape))
    start = Transform(torch.full((1, 2, *shape), 0.5), None)
    stage = _Fixed(Transform(torch.full((1, 2, *shape), 0.25)))
    total = StageChain([stage])(pair, with_inverse=False, start=start)
    torch.testing.assert_close(stage.seen[0].moving, warp(pair.moving, start.ddf))
    assert total.inverse is None
    empty = StageChain([])(pair)
    assert not empty.ddf.any() and not empty.inverse.any()


def test_chain_reports_each_stage_before_it_runs():
    shape = (8, 8)
    pair = StagePair(torch.rand(1, 1, *shape), torch.rand(1, 1, *shape))
    first, second = _Fixed(Transform.identity(pair.fixed)), _Fixed(Transform.identity(pair.fixed))
    second.name = "second stage"
    events = []
    StageChain([first, second])(pair, on_stage=lambda stage: events.append((stage_name(stage), len(stage.seen))))
    # each report comes before its stage has seen the pair
    assert events == [("_Fixed", 0), ("second stage", 0)]


def test_stage_pair_checks_shapes():
    with pytest.raises(ValueError, match="share N and S"):
        StagePair(torch.rand(1, 1, 8, 8), torch.rand(1, 1, 8, 9))
    with pytest.raises(ValueError, match="channels"):
        StagePair(torch.rand(1, 4, 8, 8), torch.rand(1, 1, 8, 8))
    with pytest.raises(ValueError, match="fixed_mask"):
        StagePair(torch.rand(1, 1, 8, 8), torch.rand(1, 1, 8, 8), fixed_mask=torch.ones(1, 1, 4, 4))
    pair = StagePair(torch.rand(1, 2, 8, 8), torch.rand(1, 1, 8, 8))
    assert pair.image.shape == pair.translated.shape == (1, 1, 8, 8)
    assert torch.equal(pair.guide, pair.translated)
    assert StagePair(torch.rand(1, 1, 8, 8), torch.rand(1, 1, 8, 8)).translated is None
    three = StagePair(torch.rand(1, 3, 8, 8), torch.rand(1, 1, 8, 8))  # image, translation, guide's translation
    assert torch.equal(three.translated, three.moving[:, 1:2]) and torch.equal(three.guide, three.moving[:, 2:])


def test_two_affine_maps_chain_to_their_product():
    shape = (30, 26)
    first = Transform.from_affine(_rotation(0.2) * 1.05, torch.tensor([[2.0, -1.0]]), shape)
    second = Transform.from_affine(_rotation(-0.1), torch.tensor([[-0.5, 3.0]]), shape)
    both = first.then(second)
    assert both.affine is not None
    exact = affine_ddf(*first.affine, shape, inner=second.ddf)  # first evaluated at the points of second
    torch.testing.assert_close(both.ddf, exact, atol=1e-4, rtol=1e-4)
    # the interpolating composition of the inverses agrees away from the border, where it clamps
    interpolated = compose(second.inverse, first.inverse)
    torch.testing.assert_close(_interior(both.inverse, 5), _interior(interpolated, 5), atol=2e-3, rtol=1e-3)


def test_identity_is_affine_and_neutral():
    shape = (10, 12)
    identity = Transform.identity(torch.zeros(2, 1, *shape))
    torch.testing.assert_close(identity.affine[0], torch.eye(2).expand(2, 2, 2))
    shift = Transform.from_affine(torch.eye(2)[None].repeat(2, 1, 1), torch.tensor([[1.0, 2.0], [0.0, -1.0]]), shape)
    chained = identity.then(shift)
    torch.testing.assert_close(chained.ddf, shift.ddf)
    torch.testing.assert_close(chained.affine[1], shift.affine[1])
    local = Transform(torch.rand(2, 2, *shape), torch.rand(2, 2, *shape))
    torch.testing.assert_close(identity.then(local).ddf, local.ddf)
