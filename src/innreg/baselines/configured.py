"""INNReg, its ablations and the baselines that are the same training code under another config.

Each variant is a set of switches laid over a base :class:`~innreg.config.Config` (network sizes,
batch size, seed, ...), trained by :func:`innreg.training.train` and run by
:func:`innreg.inference.load_model`, so every learned row of a table shares one training loop and one
inference path. Every variant spells out all of its switches, so a base config cannot silently turn
e.g. ``innreg`` into an ablation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

from innreg.baselines.base import FitInfo, Method, fit_info, model_info
from innreg.baselines.variants import VARIANTS
from innreg.config import Config
from innreg.data import PairRecord
from innreg.errors import InnregInputError
from innreg.inference import RegistrationModel, RegistrationResult, load_model


class ConfiguredMethod(Method):
    """A method trained by :func:`innreg.training.train` under the switches of ``VARIANTS[name]``.

    Args:
        name: a key of :data:`VARIANTS`.
        dim: 2 or 3 (sets ``model.dim``).
        config: base config (defaults to ``Config()``); the variant's switches override it.
    """

    trains = True

    def __init__(self, name: str, dim: int = 2, config: Config | None = None) -> None:
        super().__init__(dim)
        if name not in VARIANTS:
            raise InnregInputError(f"unknown configured method {name!r}; known: {', '.join(VARIANTS)}")
        self.name = name
        sections = VARIANTS[name]
        base = config or Config()
        self.config = base.updated(
            model=sections["model"] | {"dim": dim}, loss=sections["loss"], train=sections["train"], refine=sections["refine"]
        )
        self.model: RegistrationModel | None = None

    def run_config(self, steps: int, device: str) -> Config:
        """The config a fit with ``steps`` steps on ``device`` trains under."""
        return self.config.updated(train={"steps": steps, "device": device})

    def fit(
        self,
        train_pairs: str | Path | Sequence[PairRecord],
        out_dir: str | Path,
        steps: int,
        device: str = "auto",
        progress: bool = True,
        on_step: Callable | None = None,
    ) -> FitInfo:
        """Train (or resume, or load a finished ``out_dir/model.pt`` of at least ``steps`` steps).

        Args:
            on_step: passed to :func:`innreg.training.train` (called after every step with the
                training state and the step's losses), e.g. for convergence curves.
        """
        from innreg.training import train

        out_dir = Path(out_dir)
        model_path = out_dir / "model.pt"
        config = self.run_config(steps, device)
        info = model_info(model_path, config)
        if info is None or info.get("steps", 0) < steps:
            resume = (out_dir / "checkpoint.pt").exists()
            model_path = train(train_pairs, out_dir, config, resume=resume, progress=progress, on_step=on_step)
            info = model_info(model_path, config)
        self.model = load_model(model_path, device, refine=self.config.refine.enabled)
        return fit_info(float(info.get("train_seconds", 0.0)))

    def register(self, moving, fixed, moving_seg=None) -> RegistrationResult:
        if self.model is None:
            raise RuntimeError(f"{self.name}: call fit() before register()")
        return self.model.register(moving, fixed, moving_seg)

