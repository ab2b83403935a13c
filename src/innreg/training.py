"""Joint, unsupervised training of translator and registration network.

One step = a discriminator update (LSGAN, real fixed vs translated moving) followed by one update of
translator + registration network on the objective of :mod:`innreg.objective`. Labels are never read.
After the joint steps come the translator stages (:mod:`innreg.translation_training`) and the optional
distillation of refined fields into the registration network (:mod:`innreg.distillation`). All three
run in the one loop of :mod:`innreg.loop`, each with its checkpoint in the run folder, so a killed run
resumes where it stopped, in whichever of them.

Multi-process runs (``torchrun ... -m innreg train``, see :mod:`innreg.distributed`) use this same
loop: each rank takes its own share of every step's pairs (:func:`innreg.batches.step_indices`) with its own
augmentations, DistributedDataParallel all-reduces the gradients of the
generator and of the discriminator, and rank 0 alone writes files. The translator stages and the
distillation run data-parallel the same way.

Runs are resumable: ``RUN_DIR/checkpoint.pt`` (written atomically, :mod:`innreg.loop`'s format) holds
the weights, optimiser states, step, loss history, RNG states and the config; ``RUN_DIR/model.pt`` holds the final weights and the full
config, which is all :func:`innreg.inference.load_model` needs.
"""

from __future__ import annotations

import csv
import random
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from innreg import distributed
from innreg.atomic import atomic_output, check_output_dir, write_text
from innreg.batches import PairBatches
from innreg.config import Config, Precision
from innreg.data import PairRecord, pair_records
from innreg.distillation import distil_registration, distillation_steps
from innreg.errors import TrainingDivergedError
from innreg.loop import LoopState, optimiser_step, read_checkpoint, restore, run_loop
from innreg.losses import lsgan_discriminator_loss
from innreg.model import INNReg, build_critic, resolve_device
from innreg.model_file import save_model, upgraded_config
from innreg.objective import generator_losses
from innreg.translation_training import train_translator_stages, translator_round_steps

@dataclass
class TrainState:
    """The networks and optimisers a step changes, and the loop's progress (what a checkpoint stores)."""

    model: INNReg
    discriminator: nn.Module | None
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer | None
    scaler: torch.amp.GradScaler | None = None
    loop: LoopState = field(default_factory=LoopState)
    # DistributedDataParallel wrappers of model and discriminator in a multi-process run, else None.
    ddp_model: nn.Module | None = None
    ddp_discriminator: nn.Module | None = None

    @property
    def step(self) -> int:
        """Steps done (the loop's counter)."""
        return self.loop.step

    def parts(self) -> dict[str, nn.Module | torch.optim.Optimizer | torch.amp.GradScaler | None]:
        """What the checkpoint holds, by name."""
        return {
            "model": self.model,
            "discriminator": self.discriminator,
            "opt_g": self.opt_g,
            "opt_d": self.opt_d,
            "scaler": self.scaler,
        }


def build_state(config: Config, device: torch.device) -> TrainState:
    """Fresh networks and Adam optimisers for ``config`` (seeded by ``config.train.seed``)."""
    seed_everything(config.train.seed)
    model = INNReg(config.model).to(device)
    if model.guide is not None:  # trained by the translator stages alone; DDP must not wait for its gradients
        model.guide.requires_grad_(False)
    adversarial = model.translator is not None and config.loss.w_adv > 0
    disc = build_critic(config).to(device) if adversarial else None
    t = config.train
    opt_g = torch.optim.Adam(model.parameters(), lr=t.lr, betas=tuple(t.betas))
    opt_d = torch.optim.Adam(disc.parameters(), lr=t.lr, betas=tuple(t.betas)) if disc is not None else None
    return TrainState(model, disc, opt_g, opt_d, distributed.grad_scaler(Precision(t.precision), device))


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch so CPU runs repeat exactly."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def train_step(
    state: TrainState,
    moving: Tensor,
    fixed: Tensor,
    config: Config,
    fixed_mask: Tensor | None = None,
    moving_mask: Tensor | None = None,
) -> dict[str, float]:
    """One discriminator update and one translator/registration update; returns the loss terms
    (masks: see :func:`~innreg.objective.generator_losses`). The step counter belongs to the loop."""
    model, disc = state.model, state.discriminator
    model.train()
    precision = Precision(config.train.precision)
    amp = lambda: distributed.autocast(precision, moving.device)  # noqa: E731
    if state.scaler is None:  # a state built by hand
        state.scaler = distributed.grad_scaler(precision, moving.device)
    scaler = state.scaler  # a no-op unless fp16
    logs: dict[str, float] = {}
    if disc is not None:
        with torch.no_grad(), amp():
            fake = model.translate(moving).to(fixed.dtype)
        with amp():  # one call on real + fake: one DDP forward per backward (instance norm is per sample)
            real_score, fake_score = (state.ddp_discriminator or disc)(torch.cat([fixed, fake])).float().chunk(2)
        d_loss = lsgan_discriminator_loss(real_score, fake_score)
        optimiser_step(state.opt_d, d_loss, disc.parameters(), config.train.grad_clip, scaler)
        logs["disc"] = d_loss.item()
        disc.requires_grad_(False)  # the generator step must not move the discriminator
    try:
        terms = generator_losses(state.ddp_model or model, disc, moving, fixed, config.loss, fixed_mask, moving_mask, amp)
        # Checked before the backward pass: the weights stay usable, and a NaN field would reach
        # grid_sample's backward, which can crash the process. The loop adds the step and checkpoint.
        bad = sorted(key for key, value in terms.items() if not torch.isfinite(value).all())
        if bad:
            raise TrainingDivergedError(f"{', '.join(bad)} not finite")
        optimiser_step(state.opt_g, terms["total"], model.parameters(), config.train.grad_clip, scaler)
        scaler.update()
    finally:
        if disc is not None:
            disc.requires_grad_(True)
    logs.update({k: v.item() for k, v in terms.items()})
    return logs


def write_history(history: list[dict[str, float]], run_dir: Path) -> None:
    """``history.csv`` (one row per step) and ``loss_curve.png``."""
    from innreg.reports import loss_curve

    keys = sorted({k for row in history for k in row})
    with atomic_output(run_dir / "history.csv") as tmp, tmp.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=keys)
        writer.writeheader()
        writer.writerows(history)
    curves = {k: [row.get(k, float("nan")) for row in history] for k in keys if k not in ("step",)}
    loss_curve(run_dir / "loss_curve.png", curves, steps=[row["step"] for row in history])


def train(
    pairs: str | Path | Sequence[PairRecord],
    out_dir: str | Path,
    config: Config | None = None,
    resume: bool = False,
    progress: bool = True,
    on_step: Callable[[TrainState, dict[str, float]], None] | None = None,
) -> Path:
    """Train INNReg on a pair manifest and return the path of ``out_dir/model.pt``.

    Under torchrun all ranks share the joint steps, the translator stages (each rank aligning its share
    of the pairs) and the distillation; every rank returns once ``model.pt`` is written.

    Args:
        pairs: a manifest CSV (``moving,fixed[,moving_seg,fixed_seg]``) or its records.
        out_dir: run directory (created); holds ``config.yaml``, ``checkpoint.pt``, ``history.csv``,
            ``loss_curve.png`` and, at the end, ``model.pt``.
        config: the run config (defaults if ``None``). With ``resume=True`` the checkpoint's config
            is used, except ``train.steps`` which a given config may raise to train longer.
        resume: continue from ``out_dir/checkpoint.pt``.
        progress: show a progress bar with the losses.
        on_step: optional callback after each joint step with the :class:`TrainState` and the step's
            logs (e.g. for convergence studies).
    """
    out_dir = Path(out_dir)
    records = pair_records(pairs)
    ckpt_path = out_dir / "checkpoint.pt"
    check_output_dir(out_dir, "run folder")
    created = not out_dir.exists()
    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        return _train(records, out_dir, ckpt_path, config, resume, progress, on_step)
    except BaseException:
        # A run that failed before its first checkpoint leaves nothing behind (no empty run folder).
        if created and not ckpt_path.exists():
            shutil.rmtree(out_dir, ignore_errors=True)
        raise


def _plan(config: Config, n_pairs: int, device: torch.device, world_size: int, done: int) -> str:
    """The run's one-line plan, printed at its start: what trains where, and for how many steps."""
    t = config.train
    where = f"{device}" + (f" x {world_size} processes" if world_size > 1 else "")
    precision = "" if t.precision == Precision.FP32 else f", {Precision(t.precision).value}"
    stages = [f"{t.steps} joint steps" + (f" ({done} done)" if done else "")]
    if t.translator_rounds:
        stages.append(f"{t.translator_rounds} translator rounds of {translator_round_steps(t)} steps")
    distil = distillation_steps(config)
    if distil:
        stages.append(f"{distil} distillation steps")
    return f"innreg: training on {where}{precision}, {n_pairs} pairs, {config.model.dim}D: {', then '.join(stages)}"


def _train(
    records: list[PairRecord],
    out_dir: Path,
    ckpt_path: Path,
    config: Config | None,
    resume: bool,
    progress: bool,
    on_step: Callable[[TrainState, dict[str, float]], None] | None,
) -> Path:
    """The body of :func:`train`, in a run folder that exists."""
    import yaml

    requested_steps = None if config is None else config.train.steps  # no config: the run's own steps
    config = config or Config()
    ctx, device = distributed.setup(resolve_device(config.train.device, where="train.device"))
    distributed.check_precision(config.train.precision, device)
    if resume and ckpt_path.exists():
        # The data workers belong to this machine, like the device (the batches are the same either way).
        machine = {"data_workers": config.train.data_workers}
        saved = read_checkpoint(ckpt_path, "train")
        config = upgraded_config(saved["extra"]["config"], str(ckpt_path)).updated(train=machine)  # older runs too
        distributed.check_precision(config.train.precision, device, f"{ckpt_path}: train.precision")
        if requested_steps is not None and requested_steps > config.train.steps:
            config = config.updated(train={"steps": requested_steps})
        state = build_state(config, device)
        state.loop = restore(saved, state.parts())
    else:
        if resume and ctx.is_main:
            print(f"innreg: no checkpoint in {out_dir}, starting a new run")
        state = build_state(config, device)
    state.ddp_model = distributed.wrap(state.model, ctx, device)
    state.ddp_discriminator = distributed.wrap(state.discriminator, ctx, device)
    main = ctx.is_main
    if main:
        write_text(out_dir / "config.yaml", yaml.safe_dump(config.to_dict(), sort_keys=False))

    t = config.train
    if main and progress:
        print(_plan(config, len(records), device, ctx.world_size, state.step), flush=True)
    batches = PairBatches(records, config, device, (ctx.rank, ctx.world_size) if ctx.enabled else None)

    def step_fn(step: int) -> dict[str, float]:
        batch = batches.batch(step)
        masks = {key: batch[key] for key in ("fixed_mask", "moving_mask") if key in batch}
        logs = train_step(state, batch["moving"], batch["fixed"], config, **masks)
        return distributed.mean_over_ranks(logs, ctx, device)

    if main and state.step < t.steps:
        # Joint steps still to run change the model: later stages' checkpoints and a model.pt from before
        # are stale (a model.pt stands for a finished run of config.yaml).
        stale_files = [*out_dir.glob("translator_round*_checkpoint.pt"), out_dir / "distillation_checkpoint.pt"]
        for stale in [*stale_files, out_dir / "model.pt"]:
            stale.unlink(missing_ok=True)
    run_loop(
        "train", t.steps, step_fn, state.parts(), ckpt_path, t.checkpoint_every, progress and main,
        state=state.loop, on_step=None if on_step is None else lambda _, logs: on_step(state, logs), writer=main, extra=lambda: {"config": config.to_dict()},
        agree=distributed.loop_agreement(ctx, device),
    )
    batches.close()  # the translator stages draw their own batches; the distillation starts the workers again
    model_path = out_dir / "model.pt"
    state.ddp_model = state.ddp_discriminator = None
    if main and progress and (t.translator_rounds or t.distil_steps):
        print("innreg: translator stages, then distillation", flush=True)
    translator = train_translator_stages(state.model, records, config, device, out_dir, progress, ctx)
    distilled = distil_registration(state.model, batches, config, out_dir / "distillation_checkpoint.pt", progress, ctx)
    batches.close()
    if main:
        write_history(state.loop.history, out_dir)
        seconds = state.loop.seconds + sum(loop.seconds for loop in translator) + distilled.seconds
        info = {"steps": state.step, "train_seconds": seconds, "n_pairs": len(records)}
        if ctx.enabled:
            info["world_size"] = ctx.world_size
        if translator and translator[-1].history:
            info["translator_l1"] = translator[-1].history[-1]["l1"]
        if distilled.history:
            info["distil"] = distilled.history[-1]["distil"]
        save_model(state.model, config, model_path, info)
    distributed.teardown(ctx)  # every rank returns once model.pt exists
    return model_path
