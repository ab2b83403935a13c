"""The switches of INNReg, its ablations and the baselines that are the same training code under
another config (:class:`~innreg.baselines.configured.ConfiguredMethod`): plain data, so the method
names are known without importing torch (``innreg benchmark --help``)."""

from __future__ import annotations

from typing import Any

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
