"""CycleGAN + VoxelMorph: the two-stage translate-then-register baseline.

Stage 1 trains a CycleGAN on the (unaligned) training pairs: generators ``G_AB`` (moving -> fixed
modality) and ``G_BA``, the core's ResNet translator each, and two patch discriminators, with LSGAN
losses plus cycle consistency ``w_cycle * (|G_BA(G_AB(A)) - A| + |G_AB(G_BA(B)) - B|)``.
Stage 2 freezes ``G_AB`` and trains a VoxelMorph registration network on ``(G_AB(A), B)`` with the
mono-modal loss ``w_l1 * |warp(G_AB(A)) - B| + lambda_reg * w_smooth * |grad u|^2``; that is
:func:`innreg.training.train_step` on an :class:`~innreg.model.INNReg` whose translator is the frozen
``G_AB`` and whose only optimised part is the registration network. The step budget is split between
the stages (``gan_fraction``), so the method costs as many steps as the one-stage methods.

The result is saved as an ordinary ``model.pt`` (ResNet translator + registration network), so
registration runs through :mod:`innreg.inference` like every other learned method. Each stage keeps
a resumable checkpoint in ``out_dir``; both run in the training loop of :mod:`innreg.loop`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch
from torch import nn

from innreg.baselines.base import FitInfo, Method, fit_info, model_info
from innreg.config import Config
from innreg.data import PairRecord, pair_records
from innreg.errors import InnregInputError, TrainingDivergedError
from innreg.inference import RegistrationModel, RegistrationResult, load_model
from innreg.losses import lsgan_discriminator_loss, lsgan_generator_loss
from innreg.model import INNReg, build_critic, build_translator, resolve_device
from innreg.batches import PairBatches
from innreg.loop import optimiser_step, run_loop
from innreg.model_file import save_model
from innreg.training import TrainState, seed_everything, train_step


class CycleGanVoxelMorph(Method):
    """Two-stage baseline: CycleGAN translation, then VoxelMorph on the translated pair.

    Args:
        dim: 2 or 3.
        config: base config: network sizes (``resnet_*``, ``unet_*``, ``diffeomorphic``, ``train.disc_*``),
            ``w_l1``, ``w_smooth``, ``lambda_reg`` and the training settings.
        gan_fraction: share of the step budget spent on the CycleGAN (the rest registers).
        w_cycle: weight of the cycle-consistency L1 (CycleGAN's 10).
    """

    name = "cyclegan-voxelmorph"
    trains = True

    def __init__(self, dim: int = 2, config: Config | None = None, gan_fraction: float = 0.5, w_cycle: float = 10.0) -> None:
        super().__init__(dim)
        if not 0.0 < gan_fraction < 1.0:
            raise InnregInputError(f"cyclegan-voxelmorph: gan_fraction must lie in (0, 1), got {gan_fraction}")
        base = config or Config()
        # Stage 2 is train_step with no similarity and no adversarial term: L1 + smoothness only.
        self.config = base.updated(
            model={"dim": dim, "translator": "resnet", "reg_input": "translated"},
            loss={"w_sim": 0.0, "w_adv": 0.0},
            refine={"enabled": False},
        )
        self.gan_fraction = gan_fraction
        self.w_cycle = w_cycle
        self.model: RegistrationModel | None = None

    def fit(
        self,
        train_pairs: str | Path | Sequence[PairRecord],
        out_dir: str | Path,
        steps: int,
        device: str = "auto",
        progress: bool = True,
    ) -> FitInfo:
        """Train both stages (``steps`` in all), or resume them, or load a finished ``model.pt``."""
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        model_path = out_dir / "model.pt"
        config = self.config.updated(train={"steps": steps, "device": device})
        info = model_info(model_path, config)
        if info is None or info.get("steps", 0) < steps:
            if steps < 2:
                raise InnregInputError(f"cyclegan-voxelmorph: needs at least 2 steps (one per stage), got {steps}")
            records = pair_records(train_pairs)
            dev = resolve_device(device)
            batches = PairBatches(records, config, dev)
            gan_steps = min(steps - 1, max(1, round(steps * self.gan_fraction)))
            seed_everything(config.train.seed)
            g_ab, gan_seconds = self._fit_cyclegan(batches, config, dev, gan_steps, out_dir, progress)
            model, reg_seconds = self._fit_registration(batches, config, dev, g_ab, gan_steps, steps, out_dir, progress)
            info = {"steps": steps, "gan_steps": gan_steps, "train_seconds": gan_seconds + reg_seconds, "n_pairs": len(records)}
            save_model(model, config, model_path, info)
        self.model = load_model(model_path, device, refine=False)
        return fit_info(float(info["train_seconds"]))

    def _fit_cyclegan(
        self, batches: PairBatches, config: Config, device: torch.device, steps: int, out_dir: Path, progress: bool
    ) -> tuple[nn.Module, float]:
        """Stage 1: returns the trained ``G_AB`` and the stage's step seconds."""
        m, t = config.model, config.train
        g_ab, g_ba = build_translator(m).to(device), build_translator(m).to(device)
        d_a, d_b = build_critic(config).to(device), build_critic(config).to(device)
        generators, discriminators = nn.ModuleList([g_ab, g_ba]), nn.ModuleList([d_a, d_b])
        opt_g = torch.optim.Adam(generators.parameters(), lr=t.lr, betas=tuple(t.betas))
        opt_d = torch.optim.Adam(discriminators.parameters(), lr=t.lr, betas=tuple(t.betas))

        def step_fn(step: int) -> dict[str, float]:
            moving, fixed = batches(step)
            generators.train()
            discriminators.train()
            fake_b, fake_a = g_ab(moving), g_ba(fixed)
            discriminators.requires_grad_(False)  # the generator update must not move the critics
            adv = lsgan_generator_loss(d_b(fake_b)) + lsgan_generator_loss(d_a(fake_a))
            cycle = (g_ba(fake_b) - moving).abs().mean() + (g_ab(fake_a) - fixed).abs().mean()
            g_loss = adv + self.w_cycle * cycle
            optimiser_step(opt_g, g_loss, generators.parameters(), t.grad_clip)
            discriminators.requires_grad_(True)
            d_loss = lsgan_discriminator_loss(d_b(fixed), d_b(fake_b.detach())) + lsgan_discriminator_loss(
                d_a(moving), d_a(fake_a.detach())
            )
            optimiser_step(opt_d, d_loss, discriminators.parameters(), t.grad_clip)
            if not torch.isfinite(g_loss + d_loss):
                raise TrainingDivergedError("cyclegan-voxelmorph: CycleGAN loss not finite")  # the loop adds the step
            return {"adv": adv.item(), "cycle": cycle.item(), "disc": d_loss.item()}

        parts = {"generators": generators, "discriminators": discriminators, "opt_g": opt_g, "opt_d": opt_d}
        loop = run_loop("cyclegan", steps, step_fn, parts, out_dir / "cyclegan_checkpoint.pt", t.checkpoint_every, progress)
        return g_ab, loop.seconds

    def _fit_registration(
        self,
        batches: PairBatches,
        config: Config,
        device: torch.device,
        g_ab: nn.Module,
        first_step: int,
        last_step: int,
        out_dir: Path,
        progress: bool,
    ) -> tuple[INNReg, float]:
        """Stage 2 (global steps ``first_step .. last_step - 1``): returns the assembled model
        (frozen ``G_AB`` + trained registration network) and the stage's step seconds."""
        model = INNReg(config.model).to(device)
        model.translator.load_state_dict(g_ab.state_dict())
        model.translator.requires_grad_(False)
        opt = torch.optim.Adam(model.registration.parameters(), lr=config.train.lr, betas=tuple(config.train.betas))
        state = TrainState(model=model, discriminator=None, opt_g=opt, opt_d=None)

        def step_fn(step: int) -> dict[str, float]:
            moving, fixed = batches(first_step + step)
            logs = train_step(state, moving, fixed, config)
            return {k: logs[k] for k in ("total", "l1", "smooth")}

        parts = {"registration": model.registration, "opt": opt}
        loop = run_loop(
            "voxelmorph", last_step - first_step, step_fn, parts, out_dir / "registration_checkpoint.pt",
            config.train.checkpoint_every, progress,
        )
        return model, loop.seconds

    def register(self, moving, fixed, moving_seg=None) -> RegistrationResult:
        if self.model is None:
            raise RuntimeError(f"{self.name}: call fit() before register()")
        return self.model.register(moving, fixed, moving_seg)
