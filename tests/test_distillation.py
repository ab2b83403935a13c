"""Distillation of the refinement's affine maps and fields into the registration network."""

from __future__ import annotations

import copy

import pytest
import torch

from innreg.config import Config
from innreg.core.affine import affine_ddf
from innreg.data import read_manifest
from innreg.distillation import distil_registration, distillation_steps, refined_targets
from innreg.model import INNReg
from innreg.batches import PairBatches
from innreg.pipeline import refined_field
from innreg.refinement import Demons


def test_distillation_length_is_capped_at_twice_the_joint_steps():
    def steps(**train) -> int:
        return distillation_steps(Config().updated(train=train))

    assert steps() == 2000  # the defaults: 1200 joint steps
    assert steps(steps=500) == 1000  # a short run stays short
    assert steps(steps=3, distil_steps=4) == 4
    assert steps(distil_steps=0) == 0
    # Affine targets and no affine stage to learn them (a 3D CPU default with model.affine: false).
    assert distillation_steps(Config().updated(model={"affine": False}, train={"distil_target": "affine"})) == 0
    assert distillation_steps(Config().updated(model={"affine": False})) == 2000


def test_targets_are_the_refinement_from_the_affine_stage(phantom, tiny_dict):
    config = Config.from_dict(tiny_dict).updated(train={"augment": False}, refine={"factors": [2, 1], "steps": [5, 5]})
    torch.manual_seed(0)
    model = INNReg(config.model)
    moving, fixed = PairBatches(read_manifest(phantom["train"])[:1], config, torch.device("cpu"))(0)
    (matrix, translation), field = refined_targets(model, moving, fixed, config)
    assert matrix.shape == (1, 2, 2) and translation.shape == (1, 2) and field.shape == (1, 2, 32, 32)
    # The same stages as registration from the affine start, split after the affine part.
    torch.testing.assert_close(field, refined_field(model, moving, fixed, config, guided=True))


def test_affine_target_alone_runs_no_demons_and_leaves_the_field_term_out(phantom, tiny_dict, monkeypatch):
    config = Config.from_dict(tiny_dict).updated(
        train={"augment": False, "distil_steps": 3, "distil_target": "affine"},
        refine={"factors": [2, 1], "steps": [5, 5], "affine_factors": [2, 1]},
    )
    torch.manual_seed(0)
    model = INNReg(config.model)
    batches = PairBatches(read_manifest(phantom["train"])[:1], config, torch.device("cpu"))
    moving, fixed = batches(0)
    full, _ = refined_targets(model, moving, fixed, config.updated(train={"distil_target": "field"}))

    def no_demons(*args, **kwargs):
        raise AssertionError("the affine target ran the demons")

    monkeypatch.setattr(Demons, "__call__", no_demons)
    affine, field = refined_targets(model, moving, fixed, config)
    assert field is None
    for got, expected in zip(affine, full):  # the same affine target as the full distillation's
        torch.testing.assert_close(got, expected)
    before = copy.deepcopy(model.registration)
    history = distil_registration(model, batches, config).history
    assert len(history) == 3
    assert all(row["distil"] == 0.0 and row["distil_affine"] > 0 and row["distil_sim"] != 0 for row in history)
    # The affine stage alone learns.
    for (name, p), q in zip(model.registration.named_parameters(), before.parameters()):
        assert torch.equal(p, q) != name.startswith("affine."), name


def test_network_moves_towards_the_refined_affine_maps_and_fields(phantom, tiny_dict):
    # The target terms alone (the similarity term, which pulls elsewhere too, has its own test below).
    config = Config.from_dict(tiny_dict).updated(
        train={"distil_steps": 25, "lr": 5e-3, "augment": False, "distil_similarity": 0.0},
        refine={"factors": [2, 1], "steps": [5, 5], "affine_factors": [2, 1]},  # levels a 32x32 image has
    )
    torch.manual_seed(0)
    model = INNReg(config.model)
    batches = PairBatches(read_manifest(phantom["train"])[:1], config, torch.device("cpu"))  # one pair
    moving, fixed = batches(0)
    shape = tuple(moving.shape[2:])

    start = copy.deepcopy(model)

    def errors() -> tuple[float, float]:
        """Squared errors (voxels^2) to the targets, which start from the affine stage the network had
        when the distillation began."""
        (matrix, translation), target = refined_targets(start, moving, fixed, config)
        assert target.abs().max() > 0.5  # the refinement does move the pair
        with torch.no_grad():
            out = model(moving, fixed, with_inverse=False)
            affine = (affine_ddf(*out.affine, shape) - affine_ddf(matrix, translation, shape)).pow(2).sum(1).mean()
            return (out.ddf - target).pow(2).sum(1).mean().item(), affine.item()

    translator = {k: v.clone() for k, v in model.translator.state_dict().items()}
    field_before, affine_before = errors()
    history = distil_registration(model, batches, config).history
    field_after, affine_after = errors()
    assert len(history) == 25
    assert field_after < 0.5 * field_before and affine_after < 0.5 * affine_before, (field_before, field_after, affine_before, affine_after)
    assert all(torch.equal(v, model.translator.state_dict()[k]) for k, v in translator.items())
    assert all(p.requires_grad for p in model.translator.parameters())


def test_a_resumed_distillation_keeps_the_targets_start_and_ends_as_an_uninterrupted_one(phantom, tiny_dict, tmp_path, monkeypatch):
    import innreg.distillation as distillation

    config = Config.from_dict(tiny_dict).updated(
        train={"distil_steps": 6, "lr": 5e-3, "augment": False, "checkpoint_every": 3},
        refine={"factors": [2, 1], "steps": [5, 5], "affine_factors": [2, 1]},
    )
    batches = PairBatches(read_manifest(phantom["train"])[:1], config, torch.device("cpu"))
    torch.manual_seed(0)
    whole = INNReg(config.model)
    with torch.no_grad():  # an affine stage that has learnt something (a fresh one is the identity)
        whole.registration.affine.head[-1].bias.copy_(0.1 * torch.randn_like(whole.registration.affine.head[-1].bias))
    interrupted = copy.deepcopy(whole)
    distil_registration(whole, batches, config)

    # Stopped in step 4 (after the checkpoint of step 3), then resumed on a model with other weights:
    # the start of the targets must come from the checkpoint, not from the resumed model.
    calls = []

    def stop_in_step_four(model, *args):
        calls.append(1)
        if len(calls) > 3:
            raise KeyboardInterrupt
        return refined_targets(model, *args)

    checkpoint = tmp_path / "distil.pt"
    monkeypatch.setattr(distillation, "refined_targets", stop_in_step_four)
    with pytest.raises(KeyboardInterrupt):
        distil_registration(interrupted, batches, config, checkpoint)
    monkeypatch.setattr(distillation, "refined_targets", refined_targets)
    torch.manual_seed(1)
    resumed = INNReg(config.model)
    resumed.translator.load_state_dict(interrupted.translator.state_dict())
    distil_registration(resumed, batches, config, checkpoint)
    for key, value in whole.registration.state_dict().items():
        torch.testing.assert_close(resumed.registration.state_dict()[key], value, msg=key)


@pytest.mark.parametrize("schedule", ["constant", "cosine"])
def test_distillation_follows_the_stage_lr_schedule(phantom, tiny_dict, monkeypatch, schedule):
    import innreg.distillation

    config = Config.from_dict(tiny_dict).updated(train={"distil_steps": 4, "lr": 1e-3, "stage_lr_schedule": schedule})
    rates = []
    real_set_lr = innreg.distillation.set_lr
    monkeypatch.setattr(innreg.distillation, "set_lr", lambda opts, lr: (rates.append(lr), real_set_lr(opts, lr)))
    model = INNReg(config.model)
    distil_registration(model, PairBatches(read_manifest(phantom["train"])[:1], config, torch.device("cpu")), config)
    expected = [1e-3] * 4 if schedule == "constant" else [1e-3, 1e-3 * (2 + 2**0.5) / 4, 5e-4, 1e-3 * (2 - 2**0.5) / 4]
    assert rates == pytest.approx(expected)


def test_similarity_term_is_the_joint_training_similarity_and_reaches_the_update(phantom, tiny_dict):
    from innreg.core.warp import warp
    from innreg.objective import similarity_loss

    base = Config.from_dict(tiny_dict).updated(
        train={"distil_steps": 1, "augment": False}, refine={"factors": [2, 1], "steps": [2, 2], "affine_factors": [2, 1]}
    )
    batches = PairBatches(read_manifest(phantom["train"])[:1], base, torch.device("cpu"))
    torch.manual_seed(0)
    start = INNReg(base.model)
    updated = {}
    for weight in (0.0, 100.0):
        model = copy.deepcopy(start)
        config = base.updated(train={"distil_similarity": weight})
        (row,) = distil_registration(model, batches, config).history
        updated[weight] = model.registration.state_dict()
        if weight == 0:
            assert row["distil_sim"] == 0.0  # off: not computed
            continue
        # The logged term is the NMI loss of the joint training on the raw moving image warped by the
        # network's field before the step.
        moving, fixed = batches(10**6)
        with torch.no_grad():
            expected = similarity_loss(config.loss)(warp(moving, start(moving, fixed, with_inverse=False).ddf), fixed)
        assert row["distil_sim"] == pytest.approx(expected.item(), rel=1e-5)
    assert any(not torch.equal(updated[0.0][k], v) for k, v in updated[100.0].items())


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_distillation_runs_the_network_at_the_training_precision(phantom, tiny_dict, precision):
    # train.precision reaches the distillation as it does the joint steps: the network's forward pass under
    # autocast (bf16 here, on a CPU), the targets and the loss in float32, and the update lands.
    config = Config.from_dict(tiny_dict).updated(
        train={"distil_steps": 2, "precision": precision},
        refine={"factors": [2, 1], "steps": [2, 2], "affine_factors": [2, 1]},
    )
    torch.manual_seed(0)
    model = INNReg(config.model)
    batches = PairBatches(read_manifest(phantom["train"]), config, torch.device("cpu"))
    autocast = []
    model.registration.register_forward_hook(lambda *_: autocast.append(torch.is_autocast_enabled("cpu")))
    before = [p.detach().clone() for p in model.registration.parameters()]
    history = distil_registration(model, batches, config).history
    assert len(history) == 2 and all(torch.isfinite(torch.tensor(list(row.values()))).all() for row in history)
    assert autocast[-1] is (precision == "bf16")  # the learner's pass (the targets' refinement runs in float32)
    assert any(not torch.equal(a, b) for a, b in zip(before, model.registration.parameters()))
