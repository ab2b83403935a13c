"""INNReg, its ablations and the baselines that are the same training code under another config.

Each variant is a set of switches laid over a base :class:`~innreg.config.Config` (network sizes,
batch size, seed, ...), trained by :func:`innreg.training.train` and run by
:func:`innreg.inference.load_model`, so every learned row of a table shares one training loop and one
inference path. Every variant spells out all of its switches, so a base config cannot silently turn
e.g. ``innreg`` into an ablation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

from innreg.baselines.base import FitInfo, Method, fit_info, model_info
from innreg.config import Config
from innreg.data import PairRecord
from innreg.errors import InnregInputError
from innreg.inference import RegistrationModel, RegistrationResult, load_model

_INNREG: dict[str, dict[str, Any]] = {
    "model": {"translator": "inn", "subnet": "ddc", "reg_input": "translated", "diffeomorphic": True},
    "loss": {"reg_loss": "barrier"},
}


def _variant(
    model: dict[str, Any] | None = None,
    loss: dict[str, Any] | None = None,
    train: dict[str, Any] | None = None,
    refine: bool = False,
):
    return {
        "model": _INNREG["model"] | (model or {}),
        "loss": _INNREG["loss"] | (loss or {}),
        "train": train or {},
        "refine": {"enabled": refine},
    }


# Only the full method refines per pair; the ablations and baselines are networks alone, as in the
# paper, and compare against innreg-no-refine.
VARIANTS: dict[str, dict[str, dict[str, Any]]] = {
    "innreg": _variant(refine=True),
    "innreg-no-refine": _variant(),
    "innreg-no-inn": _variant(model={"translator": "resnet"}),
    "innreg-no-ddc": _variant(model={"subnet": "conv"}),
    "innreg-no-barrier": _variant(loss={"reg_loss": "nmi"}),
    "innreg-no-translation": _variant(model={"translator": "none", "reg_input": "raw"}),
    # Direct learned multi-modal registration (VoxelMorph with an NMI loss).
    "voxelmorph-nmi": _variant(model={"translator": "none", "reg_input": "raw"}, loss={"reg_loss": "nmi"}),
    # RegGAN (NeurIPS 2021): ResNet translator, registration of (G(A), B) with a plain displacement,
    # correction L1(warp(G(A)), B) x20, smoothness x10, adversarial x1, no similarity term, Adam 1e-4.
    "reggan": _variant(
        model={"translator": "resnet", "diffeomorphic": False},
        loss={"w_sim": 0.0, "w_l1": 20.0, "w_smooth": 10.0, "w_adv": 1.0, "lambda_reg": 1.0},
        train={"lr": 1e-4},
    ),
}
"""Method name -> config sections laid over the base config."""


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

