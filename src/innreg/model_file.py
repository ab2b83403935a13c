"""The one owner of ``model.pt``: writing it (atomically), reading it back with a format check, and
upgrading what older versions of innreg wrote.

A model file is ``{"format": MODEL_FORMAT, "config": Config.to_dict(), "state_dict": ..., "info": {...}}``;
the config travels with the weights, so a model is rebuilt from its file alone. ``info`` holds what the
trainer reports (``steps``, ``train_seconds``, ...) and the innreg and torch versions that wrote the file
(``innreg_version``, ``torch_version``; absent from files of innreg 0.1.0 before they were recorded).
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from innreg import __version__
from innreg.atomic import atomic_output
from innreg.config import Config
from innreg.errors import InnregInputError
from innreg.model import INNReg

MODEL_FORMAT = "innreg-model/1"

# Model files written before the Gauss-Newton refinement carry the settings of the earlier Adam
# refinement (recognised by these keys), whose step counts meant something else.
_ADAM_REFINE_KEYS = frozenset({"lr", "smooth"})


@dataclass
class SavedModel:
    """The contents of a model file (``source``): its (upgraded) config, the weights and the training info."""

    config: Config
    state_dict: dict[str, torch.Tensor]
    info: dict[str, Any]
    source: str

    def network(self) -> INNReg:
        """The :class:`INNReg` of ``config.model`` with the saved weights loaded (on the weights' device).

        Raises:
            InnregInputError: the weights do not fit that network (a config edited after training).
        """
        model = INNReg(self.config.model)
        mismatch = _first_mismatch(model.state_dict(), self.state_dict)
        if mismatch:
            raise InnregInputError(f"{self.source}: weights do not match the model its config describes ({mismatch})")
        model.load_state_dict(self.state_dict)
        return model


def _first_mismatch(expected: dict[str, torch.Tensor], saved: dict[str, Any]) -> str | None:
    """The first difference between a network's ``expected`` weights and the ``saved`` ones, in words
    (a missing, surplus, differently shaped or non-finite weight), or ``None`` where they fit."""
    for name, tensor in expected.items():
        if name not in saved:
            return f"{name} missing"
        found = saved[name]
        if not isinstance(found, torch.Tensor):
            return f"{name} is not a tensor"
        if found.shape != tensor.shape:
            return f"{name} has shape {tuple(found.shape)}, the config's network {tuple(tensor.shape)}"
        if found.is_floating_point() and not torch.isfinite(found).all():
            return f"{name} holds NaN or infinite values (a diverged training)"
    surplus = sorted(map(str, set(saved) - set(expected)))
    return f"{surplus[0]} is not in the config's network" if surplus else None


def save_atomic(obj: object, path: Path) -> None:
    """``torch.save`` to a temporary file beside ``path``, then rename: never a half-written file."""
    with atomic_output(path) as tmp:
        torch.save(obj, tmp)


def save_model(model: INNReg, config: Config, path: Path, info: dict | None = None) -> None:
    """Write ``model.pt``: weights plus the full config (all that registration needs), and ``info`` with the
    versions that wrote it."""
    # str(): torch.__version__ is a TorchVersion, which a weights-only load (read_model) refuses to unpickle.
    info = {"innreg_version": __version__, "torch_version": str(torch.__version__)} | (info or {})
    state = model.state_dict()
    save_atomic({"format": MODEL_FORMAT, "config": config.to_dict(), "state_dict": state, "info": info}, path)


def _current_refine_section(config: dict) -> dict:
    """``config`` with an Adam-era ``refine`` section replaced by today's defaults (its on/off switch
    and start point kept), so older model files still load."""
    refine = config.get("refine") or {}
    if not _ADAM_REFINE_KEYS & set(refine):
        return config
    return config | {"refine": {key: refine[key] for key in ("enabled", "init") if key in refine}}


# Keys that older innreg versions did not write, per config section, with the value their files hold:
# ``refine.reference_spacing`` (before it, the refinement worked in voxel units: 0),
# ``refine.mind_presmooth`` (before it, MIND of the unsmoothed images: 0), ``refine.inverse_weight``
# (before it, no channel of the translator's inverse: 0), ``refine.inverse_factor`` (before it, the
# inverse at the working resolution: 1), ``model.squeeze``
# (before it, a cell-squeeze translator; the default ``haar`` has weights of the same shapes that mean
# something else), ``model.affine_pool`` / ``affine_hidden`` (before them, an affine stage with global
# average pooling and a linear head), ``model.affine_slope`` (before it, the head's hidden units were plain
# ReLUs), ``model.cascades`` (before it, one U-Net pass; the default is now 2), ``model.inn_latent``
# (before it, a translator without latent channels; the 2D default is now 1) and ``model.hu_curve`` (before
# it, CT in HU was normalised by its percentiles like any image).
_KEYS_BEFORE_THEY_EXISTED = {
    "refine": {"reference_spacing": 0.0, "mind_presmooth": 0.0, "inverse_weight": 0.0, "inverse_factor": 1},
    "model": {
        "squeeze": "cells", "affine_pool": 1, "affine_hidden": 0, "affine_slope": 0.0, "cascades": 1, "inn_latent": 0,
        "hu_curve": False,
    },
}


def _with_stored_keys(config: dict) -> dict:
    """``config`` with each key its file lacks set to what files of that age hold."""
    return config | {section: old | (config.get(section) or {}) for section, old in _KEYS_BEFORE_THEY_EXISTED.items()}


def upgraded_config(stored: dict, source: str) -> Config:
    """The :class:`Config` of a stored config dict (a model file's or a training checkpoint's) from any
    innreg version: the upgrades above, then :meth:`Config.from_dict` (which also moves keys that
    older versions kept in another section, ``model.disc_*``)."""
    if not isinstance(stored, dict) or not all(isinstance(v, (dict, type(None))) for v in stored.values()):
        raise InnregInputError(f"{source}: config: expected a mapping of sections to mappings of keys")
    upgraded = _with_stored_keys(_current_refine_section(stored))
    return Config.from_dict(upgraded, source=source)


def read_model(path: str | Path, device: str | torch.device = "cpu") -> SavedModel:
    """Read and check a model file written by :func:`save_model` (or an older innreg).

    Raises:
        InnregInputError: no such file, an unreadable or foreign file, a newer model format, or a file
            of this format without its config or weights.
    """
    path = Path(path)
    if not path.is_file():
        raise InnregInputError(f"{path}: model file not found")
    try:
        # Tensors and plain values only: a model file from elsewhere cannot run code when it is read.
        ckpt = torch.load(path, map_location=device, weights_only=True)
    except pickle.UnpicklingError as err:
        problem = "not a plain model file (it holds objects other than weights and settings)"
        raise InnregInputError(f"{path}: {problem}") from err
    except Exception as err:
        problem = f"cannot read model ({err.__class__.__name__}; truncated or not a model.pt)"
        raise InnregInputError(f"{path}: {problem}") from err
    if not isinstance(ckpt, dict) or ckpt.get("format") != MODEL_FORMAT:
        found = ckpt.get("format") if isinstance(ckpt, dict) else None
        if isinstance(found, str) and found.startswith(MODEL_FORMAT.split("/")[0] + "/"):
            raise InnregInputError(
                f"{path}: model format {found} is not readable by this innreg (reads {MODEL_FORMAT}); upgrade innreg"
            )
        raise InnregInputError(f"{path}: not an innreg model file (expected {MODEL_FORMAT})")
    missing = [key for key in ("config", "state_dict") if key not in ckpt]
    if missing:
        raise InnregInputError(f"{path}: model file without {' or '.join(missing)} (damaged or edited)")
    if not isinstance(ckpt["state_dict"], dict):
        raise InnregInputError(f"{path}: state_dict: expected a mapping of weight names to tensors")
    config = upgraded_config(ckpt["config"], str(path))
    return SavedModel(config, ckpt["state_dict"], ckpt.get("info") or {}, str(path))
