"""Distillation of refined fields into the registration network."""

from __future__ import annotations

import torch

from innreg.config import Config
from innreg.data import read_manifest
from innreg.distillation import distil_registration, refined_targets
from innreg.model import INNReg
from innreg.batches import PairBatches


def test_network_moves_towards_the_refined_fields(phantom, tiny_dict):
    config = Config.from_dict(tiny_dict).updated(
        train={"distil_steps": 25, "lr": 1e-2, "augment": False}, refine={"factors": [2, 1], "steps": [5, 5]}
    )
    torch.manual_seed(0)
    model = INNReg(config.model)
    batches = PairBatches(read_manifest(phantom["train"])[:1], config, torch.device("cpu"))  # one pair: a fixed target
    moving, fixed = batches(0)
    target = refined_targets(model, moving, fixed, config)

    def error() -> float:
        with torch.no_grad():
            return (model(moving, fixed, with_inverse=False).ddf - target).pow(2).sum(1).mean().item()

    translator = {k: v.clone() for k, v in model.translator.state_dict().items()}
    affine = {k: v.clone() for k, v in model.registration.affine.state_dict().items()}
    before = error()
    history = distil_registration(model, batches, config).history
    assert len(history) == 25 and target.abs().max() > 0.5  # the refinement did move the pair
    assert error() < 0.5 * before, (before, error())
    assert all(torch.equal(v, model.translator.state_dict()[k]) for k, v in translator.items())
    assert all(torch.equal(v, model.registration.affine.state_dict()[k]) for k, v in affine.items())
    assert all(p.requires_grad for p in model.translator.parameters())
