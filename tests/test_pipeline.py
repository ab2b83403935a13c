"""Which stages a model runs, the pair they see, and the network as a stage."""

from __future__ import annotations

import pytest
import torch

from innreg.chain import StagePair
from innreg.config import Config
from innreg.core.filters import downsample, resize_linear
from innreg.core.warp import warp
from innreg.model import INNReg
from innreg.pipeline import (
    NetworkPart, NetworkStage, affine_levels_for_working_grid, refined_field, registration_chain, stage_pair,
)
from innreg.refinement import AffineCorrection, Demons


@pytest.fixture
def model(tiny_config: Config) -> INNReg:
    torch.manual_seed(0)
    return INNReg(tiny_config.model).eval()


def _images(shape=(32, 32), seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(1, 1, *shape, generator=g), torch.rand(1, 1, *shape, generator=g)


@pytest.mark.parametrize(
    ("refine", "expected"),
    [
        ({"enabled": False}, [(NetworkStage, NetworkPart.FULL)]),
        ({"init": "affine"}, [(NetworkStage, NetworkPart.AFFINE), (AffineCorrection, None), (Demons, None)]),
        ({"init": "network"}, [(NetworkStage, NetworkPart.FULL), (AffineCorrection, None), (Demons, None)]),
    ],
)
def test_registration_chain_lists_the_stages_of_the_config(model, tiny_config, refine, expected):
    chain = registration_chain(model, tiny_config.updated(refine=refine))
    assert [(type(s), getattr(s, "part", None)) for s in chain.stages] == expected


def test_network_stage_full_is_the_network_and_affine_is_its_affine_stage(model):
    moving, fixed = _images()
    pair = stage_pair(model, moving, fixed)
    with torch.no_grad():
        out = model(moving, fixed)
        full = NetworkStage(model, NetworkPart.FULL)(pair, True)
        affine = NetworkStage(model, NetworkPart.AFFINE)(pair, True)
        matrix, shift = model.registration.affine(model.translate(moving), fixed)
    torch.testing.assert_close(full.ddf, out.ddf)
    torch.testing.assert_close(full.inverse, out.inverse_ddf)
    torch.testing.assert_close(affine.affine[0], matrix)
    torch.testing.assert_close(affine.affine[1], shift)


def test_network_stage_without_affine_stage_is_the_identity(tiny_config):
    model = INNReg(tiny_config.updated(model={"affine": False}).model).eval()
    moving, fixed = _images()
    step = NetworkStage(model, NetworkPart.AFFINE)(stage_pair(model, moving, fixed), True)
    assert not step.ddf.any() and not step.inverse.any()


def test_stage_pair_carries_the_translation_or_the_image_itself(model, tiny_config):
    moving, fixed = _images()
    with torch.no_grad():
        translated = stage_pair(model, moving, fixed).translated
        torch.testing.assert_close(translated, model.translate(moving))
    torch.testing.assert_close(stage_pair(model, moving, fixed, translate=False).translated, moving)
    direct = INNReg(tiny_config.updated(model={"translator": "none"}).model)
    assert stage_pair(direct, moving, fixed).translated is None


def test_stage_pair_carries_the_fixed_image_translated_back_when_asked(model, tiny_config):
    moving, fixed = _images()
    exact = INNReg(tiny_config.updated(model={"inn_latent": 0, "input_factor": 1}).model).eval()
    with torch.no_grad():
        for parameter in exact.translator.parameters():  # away from the identity it starts as
            parameter.add_(0.1 * torch.randn(parameter.shape, generator=torch.Generator().manual_seed(parameter.numel())))
        back = stage_pair(exact, moving, fixed, inverse=True).fixed_translated
        assert (back - fixed).abs().mean() > 1e-3
        torch.testing.assert_close(exact.translate(back), fixed, atol=1e-4, rtol=1e-4)  # T(T^-1(fixed)) = fixed
        # inverse_factor: T^-1 of the fixed image downsampled by it, resized back to the full grid.
        coarse = stage_pair(exact, moving, fixed, inverse=True, inverse_factor=2).fixed_translated
        assert coarse.shape == fixed.shape
        torch.testing.assert_close(coarse, resize_linear(exact.translator.inverse(downsample(fixed, 2)), tuple(fixed.shape[2:])))
        assert (coarse - back).abs().mean() > 1e-4
    assert stage_pair(model, moving, fixed).fixed_translated is None  # only when asked: it costs a pass
    torch.testing.assert_close(stage_pair(model, moving, fixed, translate=False, inverse=True).fixed_translated, fixed)
    for kind in ("none", "unet"):  # no inverse to use
        other = INNReg(tiny_config.updated(model={"translator": kind}).model)
        assert stage_pair(other, moving, fixed, inverse=True).fixed_translated is None


def test_a_guide_translates_for_the_refinement_and_the_translator_for_the_network(tiny_config):
    torch.manual_seed(0)
    config = tiny_config.updated(model={"guide": "unet"})
    model = INNReg(config.model).eval()
    moving, fixed = _images()
    with torch.no_grad():
        pair = stage_pair(model, moving, fixed)
        torch.testing.assert_close(pair.translated, model.translate(moving))
        torch.testing.assert_close(pair.guide, model.guide(moving))
        network = NetworkStage(model, NetworkPart.FULL)(pair, False)
        torch.testing.assert_close(network.ddf, model(moving, fixed, with_inverse=False).ddf)
        # The refinement matches the guide's translation: the same map as a pair that carries only it.
        demons = Demons(config.refine)
        only_guide = StagePair(torch.cat([moving, pair.guide], 1), fixed)
        torch.testing.assert_close(demons(pair, False).ddf, demons(only_guide, False).ddf)
    untranslated = stage_pair(model, moving, fixed, translate=False)
    assert untranslated.moving.shape[1] == 3 and all(torch.equal(c, moving) for c in untranslated.moving.split(1, 1))


@pytest.mark.parametrize(
    ("dim", "guide", "inverts"), [(2, "inn", "guide"), (2, "unet", "translator"), (3, "inn", "guide")]
)
def test_the_fixed_image_is_translated_back_by_the_guide_when_it_is_invertible(tiny_config, dim, guide, inverts):
    torch.manual_seed(0)
    # In 3D the guide of the CPU default: a 2D INN run slice by slice.
    model = INNReg(
        tiny_config.updated(
            model={"dim": dim, "guide": guide, "guide_slices": dim == 3, "inn_latent": 0, "input_factor": 1}
        ).model
    ).eval()
    moving, fixed = _images((16,) * dim)
    with torch.no_grad():
        for parameter in model.parameters():  # the INNs away from the identity they start as
            parameter.add_(0.1 * torch.randn(parameter.shape, generator=torch.Generator().manual_seed(parameter.numel())))
        back = stage_pair(model, moving, fixed, inverse=True).fixed_translated
        assert model.refinement_inverse is getattr(model, inverts)
        torch.testing.assert_close(back, getattr(model, inverts).inverse(fixed))
        if guide == "inn":  # the two INNs differ, so the channel says whose inverse made it
            assert (model.guide.inverse(fixed) - model.translator.inverse(fixed)).abs().mean() > 1e-3


def test_network_stage_runs_at_the_working_resolution(tiny_config):
    torch.manual_seed(0)
    model = INNReg(tiny_config.updated(model={"input_factor": 2}).model).eval()
    moving, fixed = _images((64, 48))
    with torch.no_grad():
        step = NetworkStage(model, NetworkPart.FULL)(stage_pair(model, moving, fixed), True)
    assert step.ddf.shape == (1, 2, 64, 48) and step.inverse.shape == (1, 2, 64, 48)


def test_refined_field_is_the_affine_start_chain_without_inverse(model, tiny_config):
    moving, fixed = _images()
    config = tiny_config.updated(refine={"init": "network", "translation_weight": 0.0})
    field = refined_field(model, moving, fixed, config, guided=False)
    chain = registration_chain(model, config.updated(refine={"init": "affine"}), factor=1)
    with torch.no_grad():
        expected = chain(StagePair(torch.cat([moving, model.translate(moving)], 1), fixed), with_inverse=False)
    torch.testing.assert_close(field, expected.ddf)
    assert warp(moving, field).shape == moving.shape


@pytest.mark.parametrize(
    ("factors", "steps", "factor", "expected"),
    [
        ((8, 4), (6, 3), 1, ((8, 4), (6, 3))),
        ((8, 4), (6, 3), 2, ((4, 2), (6, 3))),
        ((8, 4, 2), (6, 3, 1), 4, ((2, 1), (6, 4))),
        ((8, 4), (6, 3), 8, ((1,), (9,))),
    ],
)
def test_affine_levels_keep_their_voxel_size_on_the_working_grid(tiny_config, factors, steps, factor, expected):
    refine = tiny_config.updated(refine={"affine_factors": factors, "affine_steps": steps}).refine
    scaled = affine_levels_for_working_grid(refine, factor)
    assert (scaled.affine_factors, scaled.affine_steps) == expected
    assert (scaled.factors, scaled.steps) == (refine.factors, refine.steps)  # the demons' levels stay


def test_refined_field_on_the_working_grid_runs_the_affine_levels_of_inference(tiny_config):
    config = tiny_config.updated(model={"input_factor": 2}, refine={"translation_weight": 0.0})
    torch.manual_seed(0)
    model = INNReg(config.model).eval()
    moving, fixed = _images()  # already on the working grid, as the training-time stages have it
    field = refined_field(model, moving, fixed, config, guided=False)
    halved = [f // 2 for f in config.refine.affine_factors]
    chain = registration_chain(model, config.updated(refine={"init": "affine", "affine_factors": halved}), factor=1)
    with torch.no_grad():
        expected = chain(StagePair(torch.cat([moving, model.translate(moving)], 1), fixed), with_inverse=False)
    torch.testing.assert_close(field, expected.ddf)
