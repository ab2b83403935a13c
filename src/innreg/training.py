"""Joint, unsupervised training of translator and registration network.

One step = a discriminator update (LSGAN, real fixed vs translated moving) followed by one update of
translator + registration network on

``L = w_adv * L_adv + w_l1 * L_l1 + lambda_reg * (w_sim * L_sim + w_smooth * L_smooth)``

with ``L_l1 = |warp(T(A)) - B| (+ |warp(A) - T^-1(B)|`` for the invertible translator),
``L_sim`` the NMI barrier ``-log(NMI(warp(A), B) - tau)`` (or ``1 - NMI``) and ``L_smooth`` the mean
squared spatial gradient of the displacement. Labels are never read. After the joint steps come the
translator stages (:mod:`innreg.translation_training`) and the optional distillation of refined
fields into the registration network (:mod:`innreg.distillation`); they are not checkpointed (a
resumed run that had finished its steps runs them again).

Multi-process runs (``torchrun ... -m innreg train``, see :mod:`innreg.distributed`) use this same
loop: each rank draws its own batches, DistributedDataParallel all-reduces the gradients of the
generator and of the discriminator, and rank 0 alone writes files.

Runs are resumable: ``RUN_DIR/checkpoint.pt`` (written atomically) holds the weights, optimiser
states, step, loss history and RNG states; ``RUN_DIR/model.pt`` holds the final weights and the full
config, which is all :func:`innreg.inference.load_model` needs.
"""

from __future__ import annotations

import contextlib
import csv
import random
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from innreg import distributed
from innreg.atomic import atomic_output, check_output_dir, write_text
from innreg.config import Config, LossConfig, Precision, RegLossKind
from innreg.data import PairDataset, PairRecord, pad_collate, pair_records
from innreg.distillation import distil_registration
from innreg.errors import InnregInputError
from innreg.losses import gradient_smoothness, lsgan_discriminator_loss, lsgan_generator_loss, nmi, nmi_barrier
from innreg.model import MIN_NETWORK_SIZE, INNReg, resolve_device
from innreg.model_file import save_atomic, save_model
from innreg.nn import PatchDiscriminator, warp
from innreg.nn.layers import avg_pool
from innreg.core.warp import similarity_weight
from innreg.translation_training import train_translator_stages

CHECKPOINT_FORMAT = "innreg-checkpoint/1"


@dataclass
class TrainState:
    """Everything a step changes, and so everything a checkpoint stores."""

    model: INNReg
    discriminator: nn.Module | None
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer | None
    step: int = 0
    history: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0
    # DistributedDataParallel wrappers of model and discriminator in a multi-process run, else None.
    ddp_model: nn.Module | None = None
    ddp_discriminator: nn.Module | None = None
    scaler: torch.amp.GradScaler | None = None


def build_state(config: Config, device: torch.device) -> TrainState:
    """Fresh networks and Adam optimisers for ``config`` (seeded by ``config.train.seed``)."""
    seed_everything(config.train.seed)
    model = INNReg(config.model).to(device)
    adversarial = model.translator is not None and config.loss.w_adv > 0
    disc = (
        PatchDiscriminator(config.model.dim, 1, config.train.disc_channels, config.train.disc_layers).to(device)
        if adversarial
        else None
    )
    t = config.train
    opt_g = torch.optim.Adam(model.parameters(), lr=t.lr, betas=tuple(t.betas))
    opt_d = torch.optim.Adam(disc.parameters(), lr=t.lr, betas=tuple(t.betas)) if disc is not None else None
    return TrainState(model, disc, opt_g, opt_d)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch so CPU runs repeat exactly."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def similarity_loss(nmi_values: Tensor, loss: LossConfig) -> Tensor:
    """Registration similarity term from per-sample NMI values ``(N,)``."""
    if RegLossKind(loss.reg_loss) is RegLossKind.BARRIER:
        return nmi_barrier(nmi_values, loss.tau, loss.barrier_eps).mean()
    return (1.0 - nmi_values).mean()


def multiscale_nmi(warped: Tensor, fixed: Tensor, bins: int, scales: int, mask: Tensor | None = None) -> Tensor:
    """Per-sample NMI ``(N,)`` averaged over ``scales`` levels of an average-pooling pyramid; ``mask``
    (``(N, 1, *S)`` voxel weights, pooled alongside) restricts the joint histogram to a region."""
    pool = avg_pool(warped.dim() - 2)(2)
    values = []
    for level in range(scales):
        if level:
            if min(warped.shape[2:]) < 16:
                break
            warped, fixed = pool(warped), pool(fixed)
            mask = None if mask is None else pool(mask)
        values.append(nmi(warped, fixed, bins=bins, mask=mask))
    return torch.stack(values).mean(0)


def generator_losses(
    model: INNReg | nn.Module,
    discriminator: nn.Module | None,
    moving: Tensor,
    fixed: Tensor,
    loss: LossConfig,
    fixed_mask: Tensor | None = None,
    moving_mask: Tensor | None = None,
    amp: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
) -> dict[str, Tensor]:
    """All loss terms of the translator/registration update, and their weighted ``total``.

    Args:
        model: the :class:`INNReg`, or its DDP wrapper (whose forward all-reduces the gradients).
        moving, fixed: ``(N, 1, *S)`` images in [0, 1] on one grid.
        fixed_mask, moving_mask: optional ``(N, 1, *S)`` masks (moving space for the moving one): the
            NMI counts only voxels inside the fixed mask and the moving mask warped with the current field.
        amp: autocast context for the networks' forward passes; the losses are computed in float32.
    """
    core: INNReg = getattr(model, "module", model)
    with amp():
        out = model(moving, fixed, with_inverse=False)
        back = core.translator.inverse(fixed) if core.translator is not None and core.invertible else None
        critic = discriminator(out.translated) if core.translator is not None and discriminator is not None else None
    ddf = out.ddf.float()
    warped = warp(moving, ddf)
    # The warped mask is a constant weight: the network must not gain NMI by moving the mask itself.
    weight = similarity_weight(fixed_mask, moving_mask, ddf.detach())
    nmi_values = multiscale_nmi(warped, fixed, loss.nmi_bins, loss.nmi_scales, weight)
    terms: dict[str, Tensor] = {
        "sim": similarity_loss(nmi_values, loss),
        "smooth": gradient_smoothness(out.local_ddf.float()),
    }
    total = loss.lambda_reg * (loss.w_sim * terms["sim"] + loss.w_smooth * terms["smooth"])
    if core.translator is not None:
        l1 = (warp(out.translated.float(), ddf) - fixed).abs().mean()
        if back is not None:
            l1 = l1 + (warped - back.float()).abs().mean()
        terms["l1"] = l1
        total = total + loss.w_l1 * l1
        if critic is not None:
            terms["adv"] = lsgan_generator_loss(critic.float())
            total = total + loss.w_adv * terms["adv"]
    terms["total"] = total
    terms["nmi"] = nmi_values.mean().detach()
    return terms


def train_step(
    state: TrainState,
    moving: Tensor,
    fixed: Tensor,
    config: Config,
    fixed_mask: Tensor | None = None,
    moving_mask: Tensor | None = None,
) -> dict[str, float]:
    """One discriminator update and one translator/registration update; returns the loss terms
    (masks: see :func:`generator_losses`)."""
    model, disc = state.model, state.discriminator
    model.train()
    precision = Precision(config.train.precision)
    amp = lambda: distributed.autocast(precision, moving.device)  # noqa: E731
    if state.scaler is None:
        state.scaler = distributed.grad_scaler(precision, moving.device)
    scaler = state.scaler  # a no-op unless fp16
    logs: dict[str, float] = {}
    if disc is not None:
        with torch.no_grad(), amp():
            fake = model.translate(moving).to(fixed.dtype)
        with amp():  # one call on real + fake: one DDP forward per backward (instance norm is per sample)
            real_score, fake_score = (state.ddp_discriminator or disc)(torch.cat([fixed, fake])).float().chunk(2)
        d_loss = lsgan_discriminator_loss(real_score, fake_score)
        state.opt_d.zero_grad(set_to_none=True)
        scaler.scale(d_loss).backward()
        scaler.unscale_(state.opt_d)
        nn.utils.clip_grad_norm_(disc.parameters(), config.train.grad_clip)
        scaler.step(state.opt_d)
        logs["disc"] = d_loss.item()
        disc.requires_grad_(False)  # the generator step must not move the discriminator
    try:
        terms = generator_losses(state.ddp_model or model, disc, moving, fixed, config.loss, fixed_mask, moving_mask, amp)
        if not torch.isfinite(terms["total"]):  # checked before the update, so the weights stay usable
            raise FloatingPointError(f"loss became non-finite at step {state.step + 1}: {terms}")
        state.opt_g.zero_grad(set_to_none=True)
        scaler.scale(terms["total"]).backward()
        scaler.unscale_(state.opt_g)
        nn.utils.clip_grad_norm_(model.parameters(), config.train.grad_clip)
        scaler.step(state.opt_g)
        scaler.update()
    finally:
        if disc is not None:
            disc.requires_grad_(True)
    logs.update({k: v.item() for k, v in terms.items()})
    state.step += 1
    return logs


def save_checkpoint(state: TrainState, config: Config, path: Path) -> None:
    """Write the resumable training state."""
    save_atomic(
        {
            "format": CHECKPOINT_FORMAT,
            "config": config.to_dict(),
            "step": state.step,
            "seconds": state.seconds,
            "history": state.history,
            "model": state.model.state_dict(),
            "discriminator": state.discriminator.state_dict() if state.discriminator is not None else None,
            "opt_g": state.opt_g.state_dict(),
            "opt_d": state.opt_d.state_dict() if state.opt_d is not None else None,
            "scaler": state.scaler.state_dict() if state.scaler is not None else None,
            "rng_torch": torch.get_rng_state(),
            "rng_numpy": np.random.get_state(),
        },
        path,
    )


def load_checkpoint(path: Path, device: torch.device) -> tuple[TrainState, Config]:
    """Rebuild a :class:`TrainState` from a checkpoint written by :func:`save_checkpoint`."""
    try:
        ckpt = torch.load(path, map_location=device, weights_only=False)
    except Exception as err:  # a truncated or foreign file: say which and why
        raise InnregInputError(f"{path}: cannot read checkpoint ({err.__class__.__name__}: {err})") from err
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise InnregInputError(f"{path}: not an innreg training checkpoint")
    config = Config.from_dict(ckpt["config"], source=str(path))
    state = build_state(config, device)
    state.model.load_state_dict(ckpt["model"])
    state.opt_g.load_state_dict(ckpt["opt_g"])
    if state.discriminator is not None:
        state.discriminator.load_state_dict(ckpt["discriminator"])
        state.opt_d.load_state_dict(ckpt["opt_d"])
    state.step, state.history, state.seconds = ckpt["step"], ckpt["history"], ckpt.get("seconds", 0.0)
    if ckpt.get("scaler"):
        state.scaler = distributed.grad_scaler(Precision(config.train.precision), device)
        state.scaler.load_state_dict(ckpt["scaler"])
    torch.set_rng_state(ckpt["rng_torch"])
    np.random.set_state(ckpt["rng_numpy"])
    return state, config


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


class PairBatches:
    """The training batches of a run (used by :func:`train` and the two-stage baselines).

    ``batches(step)`` returns ``(moving, fixed)``, each ``(batch_size, 1, *S)`` on ``device``; the
    indices, slices and augmentations depend only on ``(seed, step)`` (and ``rank`` when several processes train, so each draws
    its own), so a resumed stage sees the batches it would have seen.
    """

    def __init__(
        self, records: Sequence[PairRecord], config: Config, device: torch.device, rank: int | None = None
    ) -> None:
        t = config.train
        # Each rank its own augmentations too (the dataset's randomness is keyed by its seed).
        seed = t.seed if rank is None else int(np.random.SeedSequence([t.seed, rank]).generate_state(1)[0])
        self.dataset = PairDataset(
            list(records),
            dim=config.model.dim,
            slice_axis=t.slice_axis,
            slice_range=tuple(t.slice_range),
            augment=t.augment,
            seed=seed,
            factor=config.model.input_factor,  # the networks train at their working resolution
            min_size=MIN_NETWORK_SIZE,
        )
        self.seed, self.batch_size, self.device = t.seed, t.batch_size, device
        self.rank = rank

    def batch(self, step: int) -> dict[str, Tensor]:
        """The images of step ``step`` (and ``fixed_mask``/``moving_mask`` if the pairs have masks) on ``device``."""
        rng = np.random.default_rng([self.seed, step] if self.rank is None else [self.seed, step, self.rank])
        n = len(self.dataset)
        idx = rng.choice(n, size=self.batch_size, replace=n < self.batch_size)
        # Slices and augmentations are numbered by step too, so a resumed run draws the same ones.
        batch = pad_collate([self.dataset.sample(int(i), step * self.batch_size + j) for j, i in enumerate(idx)])
        keys = ("moving", "fixed", "moving_mask", "fixed_mask")
        return {key: batch[key].to(self.device) for key in keys if key in batch}

    def __call__(self, step: int) -> tuple[Tensor, Tensor]:
        batch = self.batch(step)
        return batch["moving"], batch["fixed"]


def train(
    pairs: str | Path | Sequence[PairRecord],
    out_dir: str | Path,
    config: Config | None = None,
    resume: bool = False,
    progress: bool = True,
    on_step: Callable[[TrainState, dict[str, float]], None] | None = None,
) -> Path:
    """Train INNReg on a pair manifest and return the path of ``out_dir/model.pt``.

    Args:
        pairs: a manifest CSV (``moving,fixed[,moving_seg,fixed_seg]``) or its records.
        out_dir: run directory (created); holds ``config.yaml``, ``checkpoint.pt``, ``history.csv``,
            ``loss_curve.png`` and, at the end, ``model.pt``.
        config: the run config (defaults if ``None``). With ``resume=True`` the checkpoint's config
            is used, except ``train.steps`` which may be raised to train longer.
        resume: continue from ``out_dir/checkpoint.pt``.
        progress: show a progress bar with the losses.
        on_step: optional callback after each step (e.g. for convergence studies).
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
    from tqdm.auto import tqdm

    config = config or Config()
    ctx, device = distributed.setup(resolve_device(config.train.device))
    distributed.check_precision(config.train.precision, device)
    if resume and ckpt_path.exists():
        requested_steps = config.train.steps
        state, config = load_checkpoint(ckpt_path, device)
        if requested_steps > config.train.steps:
            config = config.updated(train={"steps": requested_steps})
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
    batches = PairBatches(records, config, device, rank=ctx.rank if ctx.enabled else None)
    bar = tqdm(
        total=t.steps, initial=state.step, desc="train", unit="step", disable=not (progress and main), dynamic_ncols=True
    )
    try:
        while state.step < t.steps:
            start = time.perf_counter()
            batch = batches.batch(state.step)
            masks = {key: batch[key] for key in ("fixed_mask", "moving_mask") if key in batch}
            logs = train_step(state, batch["moving"], batch["fixed"], config, **masks)
            state.seconds += time.perf_counter() - start
            logs = distributed.mean_over_ranks(logs, ctx, device)
            logs["step"] = state.step
            state.history.append(logs)
            if on_step is not None:
                on_step(state, logs)
            bar.update(1)
            bar.set_postfix({k: f"{logs[k]:.3f}" for k in ("total", "sim", "nmi", "l1") if k in logs})
            if main and (state.step % t.checkpoint_every == 0 or state.step == t.steps):
                save_checkpoint(state, config, ckpt_path)
    except KeyboardInterrupt:
        bar.close()
        if main:
            save_checkpoint(state, config, ckpt_path)
        raise
    bar.close()
    model_path = out_dir / "model.pt"
    if main:
        # The translator stages and the distillation run on one process, after the joint steps.
        start = time.perf_counter()
        if progress and (t.translator_rounds or t.distil_steps):
            print(f"innreg: translator stages ({t.translator_rounds} x {min(t.translator_steps, t.steps)} steps), "
                  f"distillation ({t.distil_steps} steps)")
        translator_history = train_translator_stages(state.model, records, config, device)
        distil_history = distil_registration(state.model, batches, config)
        state.seconds += time.perf_counter() - start
        write_history(state.history, out_dir)
        info = {"steps": state.step, "train_seconds": state.seconds, "n_pairs": len(records)}
        if ctx.enabled:
            info["world_size"] = ctx.world_size
        if translator_history:
            info["translator_l1"] = translator_history[-1]["l1"]
        if distil_history:
            info["distil"] = distil_history[-1]["distil"]
        save_model(state.model, config, model_path, info)
    distributed.teardown(ctx)  # every rank returns once model.pt exists
    return model_path
