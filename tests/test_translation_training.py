"""Translator stages: align the training pairs, then train the translator on the aligned pairs."""

from __future__ import annotations

import pytest
import torch

from innreg.config import Config, TrainConfig
from innreg.data import load_pair, normalize_percentile, read_manifest
from innreg.model import INNReg
from innreg.nn import warp
from innreg.chain import StageChain, StagePair
from innreg.core.filters import gaussian_smooth
from innreg.core.transform import Transform
from innreg.refinement import refinement_stages
from innreg.translation_training import (
    align_pairs, aligned_pair, train_translator, train_translator_stages, translation_loss, translator_round_steps,
)


def _tensor(array) -> torch.Tensor:
    return torch.from_numpy(array.astype("float32"))[None, None]


def _dice(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(2 * (a * b).sum() / (a.sum() + b.sum()))


def test_alignment_is_the_refined_registration(phantom, tiny_dict):
    # align_pairs warps each moving image exactly as the refinement's field does, so the moving
    # labels follow the same field; the alignment must beat no alignment on the phantom's labels.
    config = Config.from_dict(tiny_dict)
    torch.manual_seed(0)
    model = INNReg(config.model)
    for record in read_manifest(phantom["test"]):
        moving, fixed, moving_seg, fixed_seg = load_pair(record)
        m, f = _tensor(normalize_percentile(moving.array)), _tensor(normalize_percentile(fixed.array))
        (aligned, f2, covered), = align_pairs(model, [(m, f)], config, guided=False)
        with torch.no_grad():
            start = Transform.from_affine(*model.registration.affine(model.translate(m), f), tuple(m.shape[2:]))
            ddf = StageChain(refinement_stages(config.refine))(StagePair(m, f), False, start=start).ddf
        torch.testing.assert_close(aligned, warp(m, ddf))
        assert f2 is f and covered.shape == m.shape and 0 < covered.mean() <= 1
        brain_m, brain_f = _tensor((moving_seg.array > 0) * 1.0), _tensor((fixed_seg.array > 0) * 1.0)
        assert _dice(warp(brain_m, ddf, mode="nearest"), brain_f) > _dice(brain_m, brain_f)


def test_aligned_pair_marks_what_the_warp_sampled_inside_the_moving_image():
    moving, fixed = torch.rand(1, 1, 8, 10), torch.rand(1, 1, 8, 10)
    ddf = torch.zeros(1, 2, 8, 10)
    ddf[:, 1] = 3.0  # every voxel pulls from 3 columns to its right: the last 3 columns fall outside
    aligned, target, covered = aligned_pair(moving, fixed, ddf)
    torch.testing.assert_close(aligned[..., :7], moving[..., 3:])
    assert target is fixed
    assert covered[..., :7].eq(1).all() and covered[..., 7:].eq(0).all()


@pytest.mark.parametrize("inverse_l1", [0.0, 1.0])
def test_translator_learns_the_contrast_on_aligned_pairs(phantom, tiny_dict, inverse_l1):
    # A constant rate: this checks what 40 steps can learn, not the schedule (tested below).
    config = Config.from_dict(tiny_dict).updated(train={
        "translator_steps": 40, "steps": 40, "translator_lr": 1e-2, "stage_lr_schedule": "constant",
        "translator_inverse_l1": inverse_l1,
    })
    torch.manual_seed(0)
    model = INNReg(config.model)
    images = [_tensor(normalize_percentile(load_pair(r)[0].array)) for r in read_manifest(phantom["train"])]
    # Aligned by construction: the "fixed modality" is the moving image with inverted contrast.
    aligned = [(m, 1.0 - m, torch.ones_like(m)) for m in images]
    stacked = [torch.cat(p) for p in zip(*aligned)]
    weight = config.train.translator_inverse_l1  # the loss the stages minimise
    before = translation_loss(model.translator, *stacked, weight).item()
    history = train_translator(model, aligned, config, discriminator=None, seed=0).history
    after = translation_loss(model.translator, *stacked, weight).item()
    assert len(history) == 40
    assert after < 0.5 * before, (before, after)
    with torch.no_grad():  # the blocks still exactly invertible (on the image and its latent channel)
        translator, x = model.translator, stacked[0]
        full = translator._with_latents(x)
        torch.testing.assert_close(translator._run(translator._run(full, False), True), full, atol=1e-4, rtol=0)


class _Doubling(torch.nn.Module):
    """An invertible hand-case translator: ``T(x) = 2x``, ``T^-1(y) = y / 2``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 2 * x

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        return y / 2


def test_translation_loss_weighs_the_inverse_direction_on_covered_voxels():
    aligned, fixed = torch.full((1, 1, 2, 2), 1.0), torch.full((1, 1, 2, 2), 3.0)
    covered = torch.tensor([[[[1.0, 1.0], [1.0, 0.0]]]])  # the uncovered voxel must not count
    fixed[..., 1, 1] = 100.0
    # Forward: |2 - 3| = 1 on each covered voxel; inverse: |1 - 1.5| = 0.5.
    assert translation_loss(_Doubling(), aligned, fixed, covered, inverse_weight=0.0).item() == pytest.approx(1.0)
    assert translation_loss(_Doubling(), aligned, fixed, covered).item() == pytest.approx(1.5)
    assert translation_loss(_Doubling(), aligned, fixed, covered, inverse_weight=2.0).item() == pytest.approx(2.0)


def test_noise_aware_inverse_term_feeds_the_inverse_a_smoothed_fixed_image():
    fixed = torch.zeros(1, 1, 9, 9)
    fixed[..., 4, 4] = 1.0  # a noise spike: the smoothed image is a Gaussian blob
    covered = torch.ones_like(fixed)
    aligned = gaussian_smooth(fixed, 1.0) / 2  # exactly what T^-1 = y / 2 makes of the smoothed image
    forward_only = translation_loss(_Doubling(), aligned, fixed, covered, inverse_weight=0.0).item()
    assert translation_loss(_Doubling(), aligned, fixed, covered, inverse_smoothing=1.0).item() == pytest.approx(forward_only)
    # Unsmoothed (the paper's term), T^-1 sees the spike: |aligned - fixed / 2| adds to the loss.
    expected = forward_only + (aligned - fixed / 2).abs().mean().item()
    assert translation_loss(_Doubling(), aligned, fixed, covered).item() == pytest.approx(expected)


def test_stages_use_the_configured_inverse_weight_and_smoothing(tiny_dict, monkeypatch):
    from innreg import translation_training

    settings = []

    class Recording(translation_training.TranslationObjective):
        def forward(self, *args):
            settings.append((self.inverse_weight, self.inverse_smoothing))
            return super().forward(*args)

    monkeypatch.setattr(translation_training, "TranslationObjective", Recording)
    default = Config.from_dict(tiny_dict).updated(train={"translator_steps": 1, "steps": 1})
    aligned = [(torch.rand(1, 1, 8, 8), torch.rand(1, 1, 8, 8), torch.ones(1, 1, 8, 8))]
    changed = default.updated(train={"translator_inverse_l1": 0.25, "translator_inverse_smoothing": 0.7})
    for config in (default, changed):
        train_translator(INNReg(config.model), aligned, config, discriminator=None, seed=0)
    paper = (TrainConfig().translator_inverse_l1, TrainConfig().translator_inverse_smoothing)
    assert settings == [paper, (0.25, 0.7)] and paper == (1.0, 0.0)  # the paper's L1


@pytest.mark.parametrize("guide", ["none", "unet"])
def test_stages_run_every_round_and_change_only_the_stage_translator(phantom, tiny_dict, guide):
    # Without a guide the stages train the translator; with one (model.guide) the guide, and the
    # translator, the network's input, stays as the joint training left it.
    config = Config.from_dict(tiny_dict).updated(
        model={"guide": guide}, train={"translator_rounds": 2, "translator_steps": 3},
        refine={"factors": [2, 1], "steps": [2, 2]},
    )
    torch.manual_seed(0)
    model = INNReg(config.model)
    trained = model.stage_translator
    assert trained is (model.translator if guide == "none" else model.guide)
    kept = [model.registration] + ([] if guide == "none" else [model.translator])
    before = [{k: v.clone() for k, v in part.state_dict().items()} for part in [trained, *kept]]
    rounds = train_translator_stages(model, read_manifest(phantom["train"]), config, torch.device("cpu"))
    assert [len(loop.history) for loop in rounds] == [3, 3]
    for part, state in zip(kept, before[1:]):
        assert all(torch.equal(v, part.state_dict()[k]) for k, v in state.items())
    assert any(not torch.equal(v, trained.state_dict()[k]) for k, v in before[0].items())


def test_a_slice_wise_guide_learns_from_single_slices_of_the_3d_pairs(tmp_path, tiny_dict):
    from innreg.data import generate_phantom_dataset

    data = generate_phantom_dataset(tmp_path / "d", n=2, dim=3, size=(16, 16, 16), test_fraction=0.5, progress=False)
    config = Config.from_dict(tiny_dict).updated(
        model={"dim": 3, "guide": "inn", "guide_slices": True},
        train={"translator_rounds": 1, "translator_steps": 2, "steps": 2, "translator_crop": 8},
        refine={"factors": [2, 1], "steps": [2, 2]},
    )
    torch.manual_seed(0)
    model = INNReg(config.model)
    seen = []
    model.guide.net.register_forward_hook(lambda module, inputs, output: seen.append(tuple(inputs[0].shape)))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    train_translator_stages(model, read_manifest(data["train"]), config, torch.device("cpu"))
    # The alignment translates whole volumes, 16 slices at once; a training step draws batch_size
    # single-slice crops.
    assert (16, 1, 16, 16) in seen and (config.train.batch_size, 1, 8, 8) in seen
    assert {len(shape) for shape in seen} == {4}
    changed = {k.split(".")[0] for k, v in before.items() if not torch.equal(v, model.state_dict()[k])}
    assert changed == {"guide"}


def test_stages_are_skipped_without_a_translator(phantom, tiny_dict):
    config = Config.from_dict(tiny_dict).updated(model={"translator": "none"})
    assert train_translator_stages(INNReg(config.model), read_manifest(phantom["train"]), config, torch.device("cpu")) == []


def test_stages_are_skipped_for_training_images_of_several_sizes(mixed_size_records, tiny_dict, capsys):
    config = Config.from_dict(tiny_dict)
    model = INNReg(config.model)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert train_translator_stages(model, mixed_size_records, config, torch.device("cpu")) == []
    assert "translator stages skipped: the training images have 2 different sizes" in capsys.readouterr().err
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())


def test_batches_are_matching_crops_of_the_aligned_pairs():
    import numpy as np

    from innreg.translation_training import random_batch

    images = [torch.rand(1, 1, 20, 14) for _ in range(3)]
    aligned = [(m, 1.0 - m, torch.ones_like(m)) for m in images]
    moving, fixed, covered = random_batch(aligned, np.random.default_rng(0), size=4, crop=8)
    assert moving.shape == fixed.shape == covered.shape == (4, 1, 8, 8)
    torch.testing.assert_close(fixed, 1.0 - moving)  # one window (and flip) for both images of a pair
    whole = random_batch(aligned, np.random.default_rng(0), size=2, crop=0)[0]
    assert whole.shape == (2, 1, 20, 14)
    per_axis = random_batch(aligned, np.random.default_rng(0), size=3, crop=(1, 0))[0]  # one row, whole width
    assert per_axis.shape == (3, 1, 1, 14)


def test_a_bias_field_scales_the_moving_crop_smoothly_and_leaves_the_crops_and_the_fixed_image():
    import numpy as np

    from innreg.data import bias_field
    from innreg.translation_training import random_batch

    images = [torch.rand(1, 1, 20, 14) + 0.5 for _ in range(3)]
    aligned = [(m, 1.0 - m, torch.ones_like(m)) for m in images]
    plain = random_batch(aligned, np.random.default_rng(4), size=4, crop=8)
    biased = random_batch(aligned, np.random.default_rng(4), size=4, crop=8, bias=0.3)
    torch.testing.assert_close(biased[1], plain[1])  # same crops, flips and fixed images
    ratio = biased[0] / plain[0]
    assert not torch.allclose(ratio, torch.ones_like(ratio))
    # A quadratic log-field with coefficients within +-0.3: at most 5 * 0.3 anywhere in 2D, and smooth: its
    # slope along an axis is at most 0.3 + 2 * 0.3 + 0.3 per unit of [-1, 1], a step of 2 / 19 on a 20-voxel axis.
    assert ratio.log().abs().max() <= 1.5 + 1e-5
    assert (ratio[..., 1:, :] / ratio[..., :-1, :]).log().abs().max() <= 1.2 * 2 / 19 + 1e-5
    # The field itself: 1 at the centre without quadratic terms, exp(c) at the corner along the first axis.
    field = bias_field((5, 3), np.array([0.2, 0.0, 0.0, 0.0, 0.0]))
    np.testing.assert_allclose(field[2, 1], 1.0)
    np.testing.assert_allclose(field[4, 0], np.exp(0.2), rtol=1e-6)
    window = (slice(1, 4), slice(2, 3))  # a window of the field is that part of the whole field
    coefficients = np.arange(1, 6) / 10
    np.testing.assert_allclose(bias_field((5, 3), coefficients, window), bias_field((5, 3), coefficients)[window])


def test_interrupted_stages_resume_to_the_translator_of_an_uninterrupted_run(phantom, tiny_dict, tmp_path, monkeypatch):
    import copy

    from innreg import translation_training

    # With the paper's critic (off by default), blurred: its weights must resume as well.
    config = Config.from_dict(tiny_dict).updated(
        train={"translator_rounds": 2, "translator_steps": 4, "checkpoint_every": 1, "disc_blur": 1.0},
        refine={"factors": [2, 1], "steps": [2, 2]}, loss={"w_adv": 0.1},
    )
    records = read_manifest(phantom["train"])
    torch.manual_seed(0)
    start = INNReg(config.model)
    reference = copy.deepcopy(start)
    train_translator_stages(reference, records, config, torch.device("cpu"), tmp_path / "reference")

    objective, calls = translation_training.TranslationObjective, []

    class Interrupted(objective):
        def forward(self, *args):
            calls.append(1)
            if len(calls) == 6:  # round 1, second step
                raise KeyboardInterrupt
            return super().forward(*args)

    run = tmp_path / "interrupted"
    model = copy.deepcopy(start)
    monkeypatch.setattr(translation_training, "TranslationObjective", Interrupted)
    with pytest.raises(KeyboardInterrupt):
        train_translator_stages(model, records, config, torch.device("cpu"), run)
    monkeypatch.setattr(translation_training, "TranslationObjective", objective)
    resumed = copy.deepcopy(start)  # a fresh process: the joint training's weights again
    rounds = train_translator_stages(resumed, records, config, torch.device("cpu"), run)
    assert [loop.step for loop in rounds] == [4, 4] and "disc" in rounds[1].history[-1]
    for name, value in reference.translator.state_dict().items():
        torch.testing.assert_close(resumed.translator.state_dict()[name], value, msg=name)


@pytest.mark.parametrize("translator, size", [("inn", (8, 8)), ("unet", (8, 8)), ("resnet", (16, 12))])
def test_stages_crop_only_for_a_local_translator(tiny_dict, translator, size):
    # The ResNet's instance norm sees other statistics on a crop than on the whole image it translates.
    config = Config.from_dict(tiny_dict).updated(
        model={"translator": translator}, train={"translator_steps": 2, "steps": 2, "translator_crop": 8}
    )
    model = INNReg(config.model)
    seen = []
    model.translator.register_forward_hook(lambda module, inputs, output: seen.append(tuple(inputs[0].shape[2:])))
    m = torch.rand(1, 1, 16, 12)
    train_translator(model, [(m, 1.0 - m, torch.ones_like(m))], config, discriminator=None, seed=0)
    assert seen and set(seen) == {size}


@pytest.mark.parametrize("guide, rate", [("none", 2e-3), ("unet", 4e-3)])  # translator_lr; a guide's guide_lr
def test_translator_steps_follow_the_stage_lr_schedule(phantom, tiny_dict, monkeypatch, guide, rate):
    import innreg.translation_training

    config = Config.from_dict(tiny_dict).updated(
        model={"guide": guide},
        train={"translator_steps": 3, "steps": 3, "translator_lr": 2e-3, "guide_lr": 4e-3, "stage_lr_schedule": "cosine"},
    )
    seen = []
    real_set_lr = innreg.translation_training.set_lr
    monkeypatch.setattr(
        innreg.translation_training, "set_lr", lambda opts, lr: (seen.append((len([o for o in opts if o]), lr)), real_set_lr(opts, lr))
    )
    model = INNReg(config.model)
    m = _tensor(normalize_percentile(load_pair(read_manifest(phantom["train"])[0])[0].array))
    train_translator(model, [(m, 1.0 - m, torch.ones_like(m))], config, discriminator=None, seed=0)
    # the translator's optimiser only (no discriminator); rates rate * (1 + cos(pi k / 3)) / 2
    assert [n for n, _ in seen] == [1, 1, 1]
    assert [lr for _, lr in seen] == pytest.approx([rate, 0.75 * rate, 0.25 * rate])


def test_translator_round_length_is_capped_at_the_joint_steps():
    assert translator_round_steps(TrainConfig()) == 1000  # the defaults: 1200 joint steps
    assert translator_round_steps(TrainConfig(steps=300)) == 300  # a short run stays short


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_stages_run_the_networks_at_the_training_precision(phantom, tiny_dict, precision):
    # train.precision reaches the stages as it does the joint steps: the translator and the critic run
    # under autocast (bf16 here, on a CPU), the loss stays float32 and the update lands.
    config = Config.from_dict(tiny_dict).updated(
        train={"translator_rounds": 1, "translator_steps": 2, "precision": precision},
        loss={"w_adv": 0.05}, refine={"factors": [2, 1], "steps": [2, 2]},
    )
    torch.manual_seed(0)
    model = INNReg(config.model)
    seen = []
    record = lambda _, __, out: seen.append((torch.is_autocast_enabled("cpu"), out.dtype))  # noqa: E731
    model.translator.register_forward_hook(record)
    before = [p.detach().clone() for p in model.translator.parameters()]
    rounds = train_translator_stages(model, read_manifest(phantom["train"]), config, torch.device("cpu"))
    expected = (True, torch.bfloat16) if precision == "bf16" else (False, torch.float32)
    training = seen[-4:]  # each step: the critic's fake, then the objective's translation (the alignment's before)
    assert training and all(item == expected for item in training), seen
    assert all(torch.isfinite(torch.tensor(row["l1"])) for row in rounds[0].history)
    assert any(not torch.equal(a, b) for a, b in zip(before, model.translator.parameters()))
