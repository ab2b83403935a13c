"""Joint training: the loss and the misalignment go down on tiny synthetic multi-modal pairs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from innreg.config import Config
from innreg.errors import TrainingDivergedError
from innreg.objective import generator_losses
from innreg.training import build_state, train_step
from innreg.nn import warp


def synthetic_pairs(n: int, size: int = 32, seed: int = 0):
    """Two-tissue 'brains' (ellipse with an inner blob): modality A has the blob bright, B has it dark
    (contrast inversion); B is A's anatomy shifted by a random 2-4 voxels."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size].astype(np.float32)
    moving, fixed, masks_m, masks_f = [], [], [], []
    for _ in range(n):
        cy, cx = size / 2 + rng.uniform(-2, 2, 2)
        outer = ((yy - cy) / 11) ** 2 + ((xx - cx) / 9) ** 2 < 1
        inner = ((yy - cy - 2) / 4) ** 2 + ((xx - cx) / 3) ** 2 < 1
        a = np.where(inner, 1.0, np.where(outer, 0.4, 0.0)).astype(np.float32)
        b = np.where(inner, 0.3, np.where(outer, 0.9, 0.0)).astype(np.float32)
        shift = torch.tensor(rng.uniform(2, 4, 2) * rng.choice([-1, 1], 2), dtype=torch.float32)
        ddf = shift.view(1, 2, 1, 1).expand(1, 2, size, size)
        moving.append(torch.from_numpy(a)[None])
        fixed.append(warp(torch.from_numpy(b)[None, None], ddf)[0])
        masks_m.append(torch.from_numpy(outer.astype(np.float32))[None])
        masks_f.append(warp(torch.from_numpy(outer.astype(np.float32))[None, None], ddf, mode="nearest")[0])
    return torch.stack(moving), torch.stack(fixed), torch.stack(masks_m), torch.stack(masks_f)


def dice(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(2 * (a * b).sum() / (a.sum() + b.sum()))


def test_short_training_lowers_loss_and_misalignment(tiny_dict):
    torch.manual_seed(0)
    config = Config.from_dict(tiny_dict).updated(train={"lr": 3e-3, "betas": [0.9, 0.999]})
    state = build_state(config, torch.device("cpu"))
    moving, fixed, mask_m, mask_f = synthetic_pairs(4)

    def evaluate():
        with torch.no_grad():
            terms = generator_losses(state.model, state.discriminator, moving, fixed, config.loss)
            out = state.model(moving, fixed)
            warped_mask = warp(mask_m, out.ddf, mode="nearest")
        return float(terms["total"]), dice(warped_mask, mask_f)

    loss0, dice0 = evaluate()
    for _ in range(60):
        train_step(state, moving, fixed, config)
    loss1, dice1 = evaluate()
    assert state.opt_g.state[next(iter(state.model.parameters()))]["step"] == 60  # 60 updates
    assert loss1 < loss0
    assert dice1 > dice0 + 0.05, (dice0, dice1)


def test_training_is_deterministic_on_cpu(tiny_dict):
    config = Config.from_dict(tiny_dict)
    moving, fixed, _, _ = synthetic_pairs(2, seed=1)
    losses = []
    for _ in range(2):
        state = build_state(config, torch.device("cpu"))
        losses.append([train_step(state, moving, fixed, config)["total"] for _ in range(3)])
    assert losses[0] == losses[1]


def test_non_finite_loss_stops_before_the_update(tiny_dict):
    # A NaN in the input makes the loss NaN: the step raises before any backward pass or update (the
    # loop turns it into its one-line message with the last checkpoint), and the weights are untouched.
    config = Config.from_dict(tiny_dict)
    state = build_state(config, torch.device("cpu"))
    moving, fixed, _, _ = synthetic_pairs(2, seed=2)
    before = {k: v.clone() for k, v in state.model.state_dict().items()}
    broken = moving.clone()
    broken[0, 0, 3, 3] = float("nan")
    with pytest.raises(TrainingDivergedError, match="not finite"):
        train_step(state, broken, fixed, config)
    assert all(torch.equal(before[k], v) for k, v in state.model.state_dict().items())


def test_three_dimensional_training_runs(tmp_path, tiny_dict):
    from innreg.data import generate_phantom_dataset
    from innreg.inference import load_model
    from innreg.training import train

    data = generate_phantom_dataset(tmp_path / "d", n=2, dim=3, size=(16, 16, 16), test_fraction=0.5, progress=False)
    config = Config.from_dict(tiny_dict).updated(model={"dim": 3}, train={"steps": 2})
    model = load_model(train(data["train"], tmp_path / "run", config, progress=False))
    vol = np.random.default_rng(0).random((16, 16, 16)).astype(np.float32)
    result = model.register(vol, vol)
    assert result.ddf.shape == (3, 16, 16, 16) and result.warped.shape == vol.shape


def test_joint_steps_leave_the_guide_alone(tiny_dict):
    # model.guide is trained by the translator stages alone: frozen during the joint steps (so DDP does
    # not wait for gradients it never gets), while the translator learns.
    config = Config.from_dict(tiny_dict).updated(model={"guide": "unet"})
    state = build_state(config, torch.device("cpu"))
    guide = {k: v.clone() for k, v in state.model.guide.state_dict().items()}
    translator = {k: v.clone() for k, v in state.model.translator.state_dict().items()}
    moving, fixed, _, _ = synthetic_pairs(2)
    for _ in range(2):
        train_step(state, moving, fixed, config)
    assert all(torch.equal(v, state.model.guide.state_dict()[k]) for k, v in guide.items())
    assert any(not torch.equal(v, state.model.translator.state_dict()[k]) for k, v in translator.items())


def test_resume_without_config_keeps_its_steps_and_a_longer_one_drops_the_old_model(phantom, tiny_dict, tmp_path):
    import yaml

    from innreg.training import train

    run = tmp_path / "run"
    config = Config.from_dict({**tiny_dict, "train": {**tiny_dict["train"], "steps": 2}})
    train(phantom["train"], run, config, progress=False)
    finished = torch.load(run / "model.pt", weights_only=True)
    train(phantom["train"], run, resume=True, progress=False)  # no config: the run's own 2 steps, not 1200
    assert yaml.safe_load((run / "config.yaml").read_text())["train"]["steps"] == 2
    again = torch.load(run / "model.pt", weights_only=True)
    assert again["info"]["steps"] == 2
    assert all(torch.equal(v, again["state_dict"][k]) for k, v in finished["state_dict"].items())

    import innreg.training as training

    real_step = training.train_step

    def interrupted(state, *args, **kwargs):
        if state.step == 2:
            raise KeyboardInterrupt
        return real_step(state, *args, **kwargs)

    training.train_step = interrupted
    try:
        with pytest.raises(KeyboardInterrupt):
            train(phantom["train"], run, config.updated(train={"steps": 4}), resume=True, progress=False)
    finally:
        training.train_step = real_step
    assert not (run / "model.pt").exists()  # the 2-step model does not stand for the 4-step config.yaml


def test_a_resumed_fp16_run_is_refused_on_a_cpu(phantom, tiny_dict, tmp_path):
    from innreg.errors import InnregInputError
    from innreg.training import train

    run = tmp_path / "run"
    config = Config.from_dict({**tiny_dict, "train": {**tiny_dict["train"], "steps": 1}})
    train(phantom["train"], run, config, progress=False)
    saved = torch.load(run / "checkpoint.pt", weights_only=False)
    saved["extra"]["config"]["train"]["precision"] = "fp16"  # as a GPU run would have saved it
    torch.save(saved, run / "checkpoint.pt")
    with pytest.raises(InnregInputError, match=r"checkpoint.pt: train.precision fp16: needs a CUDA device"):
        train(phantom["train"], run, config.updated(train={"steps": 2}), resume=True, progress=False)


def test_the_plan_line_says_what_trains_where():
    from innreg.training import _plan

    config = Config()  # the 2D defaults
    line = _plan(config, 30, torch.device("cpu"), 1, 0)
    assert line == (
        "innreg: training on cpu, 30 pairs, 2D: 1200 joint steps, then 3 translator rounds of 1000 steps, "
        "then 2000 distillation steps"
    )
    short = config.updated(train={"steps": 10, "translator_rounds": 0, "precision": "bf16"})
    line = _plan(short, 6, torch.device("cuda", 1), 8, 4)
    assert line == (
        "innreg: training on cuda:1 x 8 processes, bf16, 6 pairs, 2D: 10 joint steps (4 done), "
        "then 20 distillation steps"
    )
