"""The configuration of a run (:class:`Config`): its sections, YAML files, the defaults sized to a
problem, and the upgrade of keys older versions kept elsewhere.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

import yaml

from innreg.config.build import build_section
from innreg.config.sections import LossConfig, ModelConfig, RefineConfig, TrainConfig
from innreg.core.enums import DistilTarget, FineUpdate, TranslatorKind
from innreg.errors import InnregInputError


SECTIONS = ("model", "loss", "train", "refine")


@dataclass
class Config:
    """The full configuration of a run."""

    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    refine: RefineConfig = field(default_factory=RefineConfig)

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (enums as strings, tuples as lists) for YAML/JSON/checkpoints."""

        def plain(v: Any) -> Any:
            if isinstance(v, Enum):
                return v.value
            if isinstance(v, (tuple, list)):
                return [plain(x) for x in v]
            return v

        return {
            name: {f.name: plain(getattr(getattr(self, name), f.name)) for f in dataclasses.fields(getattr(self, name))}
            for name in SECTIONS
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None, source: str = "config") -> Config:
        """Build a config from a (partial) nested dict; unknown keys or bad values raise
        :class:`InnregInputError` naming ``source``."""
        data = data or {}
        if not isinstance(data, dict):
            raise InnregInputError(f"{source}: expected a mapping with sections {'/'.join(SECTIONS)}")
        unknown = set(data) - set(SECTIONS)
        if unknown:
            raise InnregInputError(
                f"{source}: unknown section(s) {sorted(map(str, unknown))}; expected {', '.join(SECTIONS)}"
            )
        data = _moved_keys_upgraded(data, source)
        sections = {}
        for name, section_cls in zip(SECTIONS, (ModelConfig, LossConfig, TrainConfig, RefineConfig)):
            values = data.get(name) or {}
            sections[name] = build_section(section_cls, values, f"{source}: {name}")
        return cls(**sections)

    @classmethod
    def from_yaml(cls, path: str | Path, base: Config | None = None) -> Config:
        """Read a YAML config file (any subset of keys; the rest keep the values of ``base``, by
        default the defaults)."""
        data = _read_yaml(path)
        config = cls.from_dict(data, source=str(path))  # checks the file, naming it in errors
        if base is None:
            return config
        return base.updated(**{name: dict(values or {}) for name, values in (data or {}).items()})

    @classmethod
    def sized_for(cls, dim: int, device_type: str) -> Config:
        """Defaults sized to the problem: the plain defaults, except in 3D.

        On a GPU, four worker processes prepare the training batches ahead (``train.data_workers: 4``):
        on an H200 the CPU-side augmentation was 2.2 s of a 3.1 s step in 3D and 0.07 of 0.35 s in 2D
        (``benchmarks/RESULTS.md`` section 20); the batches are the same.

        3D (any device): a longer refinement, 40, 30 and 20 demons steps on the coarse levels and 12 at full
        resolution, computed at the velocity grid's points and pooled over a neighbourhood (``refine: {steps:
        (40, 30, 20, 12), fine_update: grid}``, ``grid_pool_sigma: 1``), after 6 and 3 affine steps (``affine_steps:
        (6, 3)``; 2D's shorter (3, 2) and (5, 5, 10, 5) were measured in 2D only, ``benchmarks/RESULTS.md`` section
        39). On the scale3d volumes (``benchmarks/scale3d.md``) twice the 2D steps of then, (20, 15, 10, 5), on every
        level gained 0.011 Dice (three times 0.014). The
        full-resolution level was most of the 3D seconds: 8 steps on every voxel kept Dice within 0.001 of 10
        (``benchmarks/RESULTS.md`` section 30); 12 at the grid's points took 6.5 instead of 8.0 s a pair for
        0.7857 vs 0.7845 Dice on a T2 -> T1 tune set (unpooled 0.7830) and 0.7488 vs 0.7436 held out on CT
        -> T1 (unpooled 0.7444; section 31). 2D keeps the shorter schedule on
        every voxel (at the grid's points: -0.0017 Dice on a PD -> T1 tune set to save 3-7 % of a pair's
        seconds). No distillation of
        refined fields in 3D: measured after the CPU defaults' joint steps on the scale3d volumes, 200 steps left the
        network alone below the identity (0.356 vs 0.403 Dice) and the full pipeline level (0.716 vs
        0.719); with the ``w_smooth: 10`` network, 400 steps: network alone 0.439 -> 0.433 (leaky head:
        0.431 -> 0.426). A GPU (not measured) distils nothing (``train.distil_steps: 0``).

        3D on a CPU: the networks work at half resolution (``model.input_factor: 2``, fields upsampled
        to the full grid for the per-pair refinement, which runs at full resolution) for
        ``train.steps: 400``: measured on 96x128x64 volumes, 1.8 CPU-seconds per step (about 12
        minutes of one core; 24 minutes wall on a loaded, shared 2-core machine), against 8-10 s per
        step at full resolution (see ``benchmarks/scale3d.md``). The translator stages there train not the
        3D INN (measured there, that took 17 of 34 minutes and lost 0.008 Dice) but a separate guide for
        the refinement, a 2D INN run on each slice (``model: {guide: inn, guide_slices: true}``, 2000 steps
        of single slices at ``train.guide_lr: 3e-3`` in five rounds of 400, ``translator_steps: 400``,
        each round starting from the training pairs aligned anew; about 10 minutes of one core): on a PD
        -> T1 set the translation's NCC with the truth rose 0.503 -> 0.735 (raw image 0.521) and Dice 0.766
        -> 0.773, no pair lower; 800 steps reached 0.639 and 0.769 (``benchmarks/RESULTS.md`` section 27);
        held out, end to end, the translation's share over ``--no-translate`` was 0.027 on T2, 0.036 on CT
        (the 3D INN as the guide: 0.028) and 0.001 on FLAIR (section 28). A GPU (``--device cuda``) gets
        the full budget: full resolution, 1200 steps. 3D on a CPU also weights the network's smoothness
        term ten times higher (``loss.w_smooth: 10``): on the scale3d volumes (tuned there) the network
        alone rose from 0.409 to 0.439 Dice and the full pipeline held (0.721 vs 0.719); on the held-out T2 -> T1
        volumes (seed 43) 0.376 -> 0.434 and 0.719 -> 0.723 (``benchmarks/scale3d.md``). Not measured
        at full resolution, so the GPU budget keeps 1. And 3D on a CPU distils the refinement's affine
        maps into the affine stage alone (``train: {distil_steps: 400, distil_target: affine}``, about 7 minutes
        of one core on the scale3d volumes, 30 on 120x140x120 volumes beside another job): the refinement's
        affine part then starts nearer (affine stage plus the refinement's correction 0.525 -> 0.543 Dice on
        scale3d, held out 0.522 -> 0.541 on T2 -> T1 and 0.380 -> 0.525 on CT -> T1, where the correction had
        failed from the undistilled start), the full pipeline 0.725 -> 0.726, 0.752 -> 0.751 and 0.674 -> 0.698;
        the network alone gains nothing consistent (0.431 -> 0.453, 0.419 -> 0.405, 0.409 -> 0.407). Final check
        on a fresh FLAIR -> T1 set: correction start 0.479 -> 0.543, full pipeline 0.730 -> 0.731, network alone
        0.442 -> 0.475 (``benchmarks/RESULTS.md`` section 12). 3D keeps a translator without latent channels
        (``model.inn_latent: 0``): the 2D default's one latent channel (section 16) was not measured in
        3D, where it would double the translator's channels. Nor the refinement's inverse channel
        (``refine.inverse_weight: 0``): measured on two fresh 3D sets with these CPU defaults, weight 3
        lost 0.021 / 0.009 Dice at half resolution and 0.015 / 0.009 at full (PD / T2 -> T1, every pair
        lower; RESULTS.md section 20), and with the slice-wise guide's inverse (``INNReg.refinement_inverse``)
        0.008 on a T2 -> T1 set (section 48). Explicit settings (config file, options) win.
        """
        config = cls().updated(model={"dim": dim}, train={"data_workers": 0 if device_type == "cpu" else 4})
        if dim == 3:
            config = config.updated(
                model={"inn_latent": 0},
                refine={
                    "steps": (40, 30, 20, 12), "affine_steps": (6, 3), "fine_update": FineUpdate.GRID,
                    "inverse_weight": 0.0,
                },
                train={"distil_steps": 0},
            )
        if dim == 3 and device_type == "cpu":
            # The translator stages train a slice-wise 2D guide, not the 3D INN (see the docstring).
            train = {
                "steps": 400, "translator_rounds": 5, "translator_steps": 400, "guide_lr": 3e-3,
                "distil_steps": 400, "distil_target": DistilTarget.AFFINE,
            }
            model = {"input_factor": 2, "guide": TranslatorKind.INN, "guide_slices": True}
            return config.updated(model=model, train=train, loss={"w_smooth": 10.0})
        return config

    def updated(self, **sections: dict[str, Any]) -> Config:
        """A copy with some fields replaced, e.g. ``cfg.updated(train={"steps": 10})``."""
        merged = self.to_dict()
        for name, values in _moved_keys_upgraded(sections, "updated").items():
            merged[name].update(values)
        return Config.from_dict(merged)


# Keys that older versions kept in another section, and where they live now. They are moved when a
# config is read, so older YAML files and model files keep loading.
_MOVED_KEYS = {("model", "disc_channels"): "train", ("model", "disc_layers"): "train"}


def _moved_keys_upgraded(data: dict[str, Any], source: str) -> dict[str, Any]:
    """``data`` (a nested config dict, possibly partial) with the keys of :data:`_MOVED_KEYS` moved to
    their current section; a key given in both places is refused."""
    moved = [(old, key, new) for (old, key), new in _MOVED_KEYS.items() if key in (data.get(old) or {})]
    if not moved:
        return data
    data = {name: dict(values or {}) for name, values in data.items()}
    for old, key, new in moved:
        target = data.setdefault(new, {})
        if key in target:
            raise InnregInputError(f"{source}: {key} is set in both {old} and {new}; it belongs in {new}")
        target[key] = data[old].pop(key)
    return data


def _read_yaml(path: str | Path) -> Any:
    """The parsed contents of a YAML config file; a missing, unreadable, non-UTF-8 or malformed file
    raises :class:`InnregInputError` naming it."""
    path = Path(path)
    if not path.is_file():
        raise InnregInputError(f"{path}: config file not found")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise InnregInputError(f"{path}: not a UTF-8 text file (a config file is YAML text)") from err
    except OSError as err:
        raise InnregInputError(f"{path}: cannot read config file ({err.strerror or err.__class__.__name__})") from err
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise InnregInputError(f"{path}: not valid YAML ({err.__class__.__name__})") from err


def refine_overrides_from_yaml(path: str | Path) -> dict[str, Any]:
    """The checked ``refine`` section of a YAML file, to change a trained model's per-pair refinement
    (e.g. ``refine: {smooth_sigma: 1.0, mind_dilation: 1}``); the other sections are fixed at training
    and refused here."""
    data = _read_yaml(path) or {}
    if not isinstance(data, dict) or set(data) - {"refine"}:
        raise InnregInputError(
            f"{path}: expected only a refine section (the other settings are fixed when the model is trained)"
        )
    Config.from_dict(data, source=str(path))
    return dict(data.get("refine") or {})
