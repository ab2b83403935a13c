"""Translator stages: train the translator on training pairs aligned by the registration.

Joint training on misaligned pairs is a chicken-and-egg problem: the L1 term ``|warp(T(A)) - B|``
only teaches ``T`` the modality change where the current field already aligns the pair, and early on
it does not, so the translator learns a blurred, partly misplaced mapping. After the joint training
:func:`train_translator_stages` runs ``train.translator_rounds`` alternating rounds:

1. align every training pair with the current best registration (the network's affine stage, then
   the per-pair refinement; round 0 matches MIND only, later rounds are guided by the translation
   learnt in the round before);
2. train the translator alone on the aligned pairs for ``train.translator_steps`` steps with the
   paper's translation loss: L1 ``|T(A') - B| + w |A' - T^-1(B)|`` on the voxels the warp covers
   (``A'`` the aligned moving image; ``w = train.translator_inverse_l1``, 1 by default) plus ``w_adv``
   times the LSGAN term against a PatchGAN. The inverse direction asks ``T^-1`` to turn the noisy fixed
   image into the aligned moving one, whose own noise it cannot know: it learns to remove noise, so ``T``
   learns to amplify it, a checkerboard four times the moving image's noise on a held-out T2 set without
   the critic (benchmarks/RESULTS.md section 8). The forward direction alone (``w = 0``) teaches a
   denoising ``T``, still exactly invertible but with an inverse that no longer translates. A noise-aware
   inverse term (``train.translator_inverse_smoothing`` ``s > 0``) feeds ``T^-1`` the fixed image smoothed
   by a Gaussian of ``s`` voxels, ``|A' - T^-1(G_s * B)|``: ``T^-1`` then meets less noise it would learn
   to remove. It lowers the checkerboard by 20-44 % and keeps an inverse that translates (section 15), but
   does not bring the texture down to the moving image's noise as the forward direction alone does.

The registration network is left as it is: only the translator changes, so the refinement's
translation guidance (``refine.translation_weight``) gets a translator that learnt on aligned pairs.
A model with a separate guide (``model.guide``) trains the guide here instead (from its initial
weights: it is not part of the joint training) and keeps its translator, the network's input, as the
joint training left it (:attr:`~innreg.model.INNReg.stage_translator`). A slice-wise guide
(``model.guide_slices``, :mod:`innreg.nn.slicewise`) learns from crops one slice thick.

Under torchrun the stages are data-parallel like the joint steps: each rank aligns its own share of the
training pairs (every ``world_size``-th, from its rank on) and draws its batches from it, and DDP
all-reduces the translator's (and a critic's) gradients, so every rank ends with the same translator.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from innreg import distributed
from innreg.config import Config, Precision, TrainConfig
from innreg.core.filters import gaussian_smooth
from innreg.data import PairDataset, PairRecord, bias_field, random_bias_coefficients
from innreg.loop import LoopState, optimiser_step, read_checkpoint, restore, run_loop, scheduled_lr, set_lr
from innreg.losses import lsgan_discriminator_loss, lsgan_generator_loss
from innreg.model import MIN_NETWORK_SIZE, INNReg, build_critic
from innreg.nn import warp
from innreg.pipeline import refined_field

# A warped voxel counts as covered (inside the moving image's field of view) above this weight.
COVERED = 0.99


@torch.no_grad()
def align_pairs(
    model: INNReg, pairs: Sequence[tuple[Tensor, Tensor]], config: Config, guided: bool
) -> list[tuple[Tensor, Tensor, Tensor]]:
    """Align each ``(moving, fixed)`` pair (``(1, 1, *S)`` in [0, 1]) with the network's affine stage
    and the refinement; ``guided`` adds the translation guidance of ``config.refine``.

    Returns:
        ``(aligned_moving, fixed, covered)`` per pair, ``(1, 1, *S)`` each; ``covered`` is 1 where the
        warp sampled inside the moving image.
    """
    model.eval()
    return [aligned_pair(moving, fixed, refined_field(model, moving, fixed, config, guided)) for moving, fixed in pairs]


def aligned_pair(moving: Tensor, fixed: Tensor, ddf: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """``(warp(moving, ddf), fixed, covered)`` for the pull-back ``ddf`` ``(1, dim, *S)``; ``covered`` is 1
    where the warp sampled inside the moving image."""
    covered = (warp(torch.ones_like(moving), ddf) > COVERED).to(moving.dtype)
    return warp(moving, ddf), fixed, covered


def translation_loss(
    translator: nn.Module,
    aligned: Tensor,
    fixed: Tensor,
    covered: Tensor,
    inverse_weight: float = 1.0,
    inverse_smoothing: float = 0.0,
) -> Tensor:
    """Masked L1 ``|T(A') - B|`` plus ``inverse_weight`` times ``|A' - T^-1(G * B)|`` (the paper's second
    direction; only for an invertible translator, and not computed at weight 0), ``G`` a Gaussian of
    ``inverse_smoothing`` voxels (0: none, the paper's term); images ``(N, 1, *S)``."""
    return TranslationObjective(translator, inverse_weight, inverse_smoothing)(aligned, fixed, covered)[0]


class TranslationObjective(nn.Module):
    """:func:`translation_loss` as a module whose one forward pass holds every use of the translator
    (DDP syncs gradients per forward / backward pair; ``T^-1`` is not ``forward``).

    ``forward(aligned, fixed, covered) -> (loss, T(aligned))``, images ``(N, 1, *S)``: the translation
    comes back for the adversarial term.
    """

    def __init__(self, translator: nn.Module, inverse_weight: float = 1.0, inverse_smoothing: float = 0.0) -> None:
        super().__init__()
        self.translator, self.inverse_weight, self.inverse_smoothing = translator, inverse_weight, inverse_smoothing

    def forward(self, aligned: Tensor, fixed: Tensor, covered: Tensor) -> tuple[Tensor, Tensor]:
        weight = covered / covered.sum().clamp_min(1.0)
        translated = self.translator(aligned)
        loss = ((translated - fixed).abs() * weight).sum()
        if self.inverse_weight > 0 and hasattr(self.translator, "inverse"):
            source = gaussian_smooth(fixed, self.inverse_smoothing)
            loss = loss + self.inverse_weight * ((aligned - self.translator.inverse(source)).abs() * weight).sum()
        return loss, translated


def random_batch(
    aligned: list[tuple[Tensor, Tensor, Tensor]],
    rng: np.random.Generator,
    size: int,
    crop: int | Sequence[int],
    bias: float = 0.0,
) -> list[Tensor]:
    """A random batch of aligned pairs: each a random crop of at most ``crop`` voxels per axis (one
    length per axis, or one for all; 0: the whole axis), flipped along random axes. The modality
    mapping is local, so crops teach it as well as whole images at a fraction of the cost. ``bias > 0``
    multiplies each item's moving crop by its window of a random :func:`~innreg.data.bias_field` over the
    whole image, of that coefficient range: the translator then cannot read a tissue from its brightness
    alone, which a bias field shifts (drawn after the crops, so the crops are the same at any ``bias``)."""
    picks = rng.choice(len(aligned), size=size, replace=len(aligned) < size)
    windows = []
    for i in picks:
        shape = aligned[i][0].shape[2:]
        crops = [crop] * len(shape) if isinstance(crop, int) else list(crop)
        window = [slice(None), slice(None)]
        for s, c in zip(shape, crops):
            length = min(s, c) if c > 0 else s
            start = int(rng.integers(0, s - length + 1))
            window.append(slice(start, start + length))
        windows.append((tuple(window), [2 + k for k in range(len(shape)) if rng.random() < 0.5]))
    items = []
    for i, (window, axes) in zip(picks, windows):
        crops = [t[window] for t in aligned[i]]
        if bias > 0:  # the field's window only: a whole volume per item and step would dwarf a crop
            shape = aligned[i][0].shape[2:]
            field = bias_field(shape, random_bias_coefficients(len(shape), bias, rng), window[2:])
            crops[0] = crops[0] * torch.from_numpy(field).to(crops[0])
        items.append([t.flip(axes) if axes else t for t in crops])
    return [torch.cat(parts) for parts in zip(*items)]


def translator_round_steps(train: TrainConfig) -> int:
    """The length of one translator round: ``train.translator_steps``, at most ``train.steps`` (so a short
    run stays short)."""
    return min(train.translator_steps, train.steps)


def train_translator(
    model: INNReg,
    aligned: list[tuple[Tensor, Tensor, Tensor]],
    config: Config,
    discriminator: nn.Module | None,
    seed: int,
    checkpoint: Path | None = None,
    progress: bool = False,
    ctx: distributed.DistContext | None = None,
) -> LoopState:
    """:func:`translator_round_steps` Adam steps of the translator alone on aligned pairs, in the loop of
    :mod:`innreg.loop` (resumable from ``checkpoint``); returns the loop's state with one log row per
    step (averaged over the ranks). All pairs share one shape. Trains
    :attr:`~innreg.model.INNReg.stage_translator`.

    Under torchrun (``ctx`` of several ranks) ``aligned`` is this rank's share: each rank draws its own
    batches from it, the translator and critic are wrapped in DDP (which first hands every rank rank 0's
    weights), and rank 0 alone writes the checkpoint and shows progress.
    """
    t, loss_cfg = config.train, config.loss
    ctx = ctx or distributed.DistContext()
    device = aligned[0][0].device
    translator = model.stage_translator.requires_grad_(True)  # a guide sits frozen outside the stages
    objective = TranslationObjective(translator, t.translator_inverse_l1, t.translator_inverse_smoothing)
    objective = distributed.wrap(objective, ctx, device)
    critic = distributed.wrap(discriminator, ctx, device)
    lr = t.translator_lr if model.guide is None else t.guide_lr
    opt = torch.optim.Adam(translator.parameters(), lr=lr, betas=tuple(t.betas))
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=lr, betas=tuple(t.betas)) if discriminator else None
    steps = translator_round_steps(t)
    # train.precision as in the joint steps: the networks' forward passes under autocast, the losses in float32.
    precision = Precision(t.precision)
    scaler = distributed.grad_scaler(precision, device)  # a no-op unless fp16
    crop = [t.translator_crop if translator.local else 0] * config.model.dim  # see INNTranslator.local
    if hasattr(translator, "slice_axis"):  # a slice-wise guide learns from single slices (innreg.nn.slicewise)
        crop[translator.slice_axis] = 1

    def step_fn(step: int) -> dict[str, float]:
        set_lr((opt, opt_d), scheduled_lr(lr, step, steps, t.stage_lr_schedule))
        translator.train()
        # Keyed by step (a resumed loop draws the same crops) and by rank (each rank its own).
        rng = np.random.default_rng([seed, 13, step, ctx.rank] if ctx.enabled else [seed, 13, step])
        moving, fixed, covered = random_batch(aligned, rng, t.batch_size, crop, t.translator_bias)
        logs = {}
        if discriminator is not None:
            with torch.no_grad(), distributed.autocast(precision, device):
                fake = translator(moving).to(fixed.dtype)
            # Real and fake in one call: one DDP forward per backward (instance norm is per sample).
            with distributed.autocast(precision, device):
                real_score, fake_score = critic(torch.cat([fixed, fake])).float().chunk(2)
            d_loss = lsgan_discriminator_loss(real_score, fake_score)
            optimiser_step(opt_d, d_loss, discriminator.parameters(), t.grad_clip, scaler)
            logs["disc"] = d_loss.item()
        with distributed.autocast(precision, device):
            l1, translated = objective(moving, fixed, covered)
        total = loss_cfg.w_l1 * l1.float()
        if discriminator is not None:
            discriminator.requires_grad_(False)  # frozen and outside DDP: the generator's step only
            with distributed.autocast(precision, device):
                adv = lsgan_generator_loss(discriminator(translated).float())
            discriminator.requires_grad_(True)
            total = total + loss_cfg.w_adv * adv
            logs["adv"] = adv.item()
        optimiser_step(opt, total, translator.parameters(), t.grad_clip, scaler)
        scaler.update()
        logs["l1"] = l1.item()
        return distributed.mean_over_ranks(logs, ctx, device)

    parts = {"translator": translator, "discriminator": discriminator, "opt": opt, "opt_d": opt_d}
    show = progress and ctx.is_main
    agree = distributed.loop_agreement(ctx, device)
    state = run_loop(
        "translator", steps, step_fn, parts, checkpoint, t.checkpoint_every, show, writer=ctx.is_main, agree=agree
    )
    model.eval()
    return state


def train_translator_stages(
    model: INNReg,
    records: Sequence[PairRecord],
    config: Config,
    device: torch.device,
    run_dir: Path | None = None,
    progress: bool = False,
    ctx: distributed.DistContext | None = None,
) -> list[LoopState]:
    """The alternating align / translate rounds (module docstring); returns each round's loop state.
    A no-op without translator or with ``translator_rounds: 0``. With ``run_dir`` every round keeps a
    checkpoint there (``translator_round{k}_checkpoint.pt``, written by rank 0): a resumed run skips
    finished rounds (restoring the translator they trained) and resumes an unfinished one.

    Under torchrun (``ctx`` of several ranks) every rank calls this: each aligns and trains on its share
    of the pairs (all of them when there are fewer pairs than ranks), see :func:`train_translator`.
    """
    t = config.train
    ctx = ctx or distributed.DistContext()
    if model.stage_translator is None or t.translator_rounds < 1 or t.translator_steps < 1:
        return []
    # The raw pairs, not augmented (the alignment is what the translator learns from), at the networks'
    # working resolution (``model.input_factor``), where inference applies the translator.
    dataset = PairDataset(
        list(records), config.model.dim, t.slice_axis, tuple(t.slice_range), None, t.seed,
        factor=config.model.input_factor, min_size=MIN_NETWORK_SIZE, hu_curve=config.model.hu_curve,
    )
    # Each rank loads only its share (all pairs when there are fewer pairs than ranks).
    indices = range(len(dataset))
    if len(dataset) >= ctx.world_size:
        indices = indices[ctx.rank :: ctx.world_size]
    items = [dataset[i] for i in indices]
    shapes = distributed.union_over_ranks({tuple(item["fixed"].shape) for item in items}, ctx)
    if len(shapes) > 1:  # batches need one shape; the joint training pads, here we skip the stage
        if ctx.is_main:
            print(f"innreg: translator stages skipped: the training images have {len(shapes)} different sizes "
                  "(the stages need one size; the jointly trained translator is kept)", file=sys.stderr)
        return []
    pairs = [(item["moving"][None].to(device), item["fixed"][None].to(device)) for item in items]
    adversarial = config.loss.w_adv > 0
    discriminator = None
    if adversarial:
        with torch.random.fork_rng(devices=[]):  # its own seed: the same critic however the run got here
            torch.manual_seed(t.seed + 7)
            discriminator = build_critic(config).to(device)
    steps = translator_round_steps(t)
    rounds = []
    for round_index in range(t.translator_rounds):
        checkpoint = None if run_dir is None else Path(run_dir) / f"translator_round{round_index}_checkpoint.pt"
        if checkpoint is not None and checkpoint.exists():
            saved = read_checkpoint(checkpoint, "translator")
            if saved["step"] >= steps:  # a finished round: its translator, no new alignment
                parts = {"translator": model.stage_translator, "discriminator": discriminator}
                rounds.append(restore(saved, parts))
                continue
        aligned = align_pairs(model, pairs, config, guided=round_index > 0)  # guidance with both weights 0 is MIND only
        distributed.barrier(ctx)  # the shares may take unequal time, past the collectives' timeout
        rounds.append(train_translator(model, aligned, config, discriminator, t.seed + round_index, checkpoint, progress, ctx))
    return rounds
