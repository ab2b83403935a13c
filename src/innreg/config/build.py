""":func:`build_section`: one section of a run's settings from a (partial) mapping, every value checked
when the config is read, so a bad value is refused naming its key instead of failing later in a run.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import typing
from enum import Enum
from typing import Any, TypeVar

from innreg.config.sections import LossConfig, ModelConfig, RefineConfig, TrainConfig
from innreg.core.enums import TranslatorKind
from innreg.errors import InnregInputError

Section = TypeVar("Section")

# The least value of each numeric key (of each entry, for a tuple key), per section: 1 for sizes and
# counts of the networks and the runs, 0 where the key's comment documents 0 as off (or it is a weight).
_AT_LEAST: dict[type, dict[str, float]] = {
    ModelConfig: {
        "inn_blocks": 1, "inn_hidden": 1, "inn_latent": 0, "ddc_kernel": 1, "resnet_channels": 1, "resnet_blocks": 1,
        "unet_encoder": 1, "unet_decoder": 1, "affine_pool": 1, "affine_hidden": 0, "affine_slope": 0, "int_steps": 0,
        "cascades": 1, "input_factor": 1,
    },
    LossConfig: {"nmi_bins": 2, "nmi_scales": 1, "lambda_reg": 0, "w_sim": 0, "w_adv": 0, "w_l1": 0, "w_smooth": 0},
    TrainConfig: {
        "steps": 1, "batch_size": 1, "checkpoint_every": 1, "translator_steps": 1, "data_workers": 0, "betas": 0,
        "slice_range": 0, "disc_channels": 1, "disc_layers": 1, "disc_blur": 0, "translator_rounds": 0,
        "translator_crop": 0, "translator_inverse_l1": 0, "translator_inverse_smoothing": 0, "translator_bias": 0,
        "distil_steps": 0, "distil_similarity": 0,
    },
    RefineConfig: {
        "affine_factors": 1, "affine_steps": 0, "affine_damping": 0, "factors": 1, "steps": 0, "grid_factor": 1,
        "grid_pool_sigma": 0, "smooth_sigma": 0, "residual_damping": 0, "int_steps": 0, "mind_radius": 0,
        "mind_dilation": 1, "mind_presmooth": 0, "reference_spacing": 0, "translation_weight": 0, "inverse_weight": 0,
        "inverse_factor": 1, "remap_bins": 0,
    },
}  # fmt: skip

# Keys that must be above 0 (rates, bounds and scales that divide), per section.
_POSITIVE: dict[type, tuple[str, ...]] = {
    ModelConfig: ("clamp",),
    LossConfig: ("barrier_eps",),
    TrainConfig: ("lr", "translator_lr", "guide_lr", "grad_clip"),
    RefineConfig: ("step_size",),
}


def build_section(section_cls: type[Section], values: dict[str, Any], where: str) -> Section:
    """An instance of ``section_cls`` from ``values`` (any subset of its keys, YAML types converted);
    unknown keys and bad values raise :class:`InnregInputError` naming ``where`` (``<file>: <section>``)."""
    if not isinstance(values, dict):
        raise InnregInputError(f"{where}: expected a mapping")
    fields = [f.name for f in dataclasses.fields(section_cls)]
    unknown = set(values) - set(fields)
    if unknown:
        raise InnregInputError(f"{where}: unknown key(s) {sorted(map(str, unknown))}; known: {sorted(fields)}")
    defaults = section_cls()
    lengths = _fixed_lengths(section_cls)
    kwargs = {}
    for name, value in values.items():
        try:
            kwargs[name] = _converted(getattr(defaults, name), value, lengths.get(name))
        except (ValueError, TypeError) as err:
            raise InnregInputError(f"{where}.{name}: invalid value {value!r} ({err})") from err
    section = section_cls(**kwargs)
    _check_bounds(section, where)
    _check_relations(section, where)
    return section


@functools.cache
def _fixed_lengths(section_cls: type) -> dict[str, int]:
    """The entries of each fixed-length tuple key of ``section_cls`` (``tuple[float, float]``: 2)."""
    hints = typing.get_type_hints(section_cls)
    return {
        name: len(args)
        for name, hint in hints.items()
        if typing.get_origin(hint) is tuple and Ellipsis not in (args := typing.get_args(hint))
    }


def _converted(default: Any, value: Any, length: int | None = None) -> Any:
    """``value`` as the type of ``default``; ValueError or TypeError where it is not one."""
    if isinstance(default, Enum):
        return type(default)(value)
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ValueError("expected true/false")
        return value
    if isinstance(default, (int, float)):
        return _number(type(default), value)
    if isinstance(default, str):
        if not isinstance(value, str):
            raise ValueError("expected a string")
        return value
    if isinstance(default, tuple):
        if not isinstance(value, (list, tuple)):
            raise ValueError("expected a list")
        if default and not value:
            raise ValueError("expected at least one entry")
        if length is not None and len(value) != length:
            raise ValueError(f"expected {length} entries")
        return tuple(_converted(default[0], entry) for entry in value)
    return value


def _number(kind: type, value: Any) -> int | float:
    """``value`` as ``kind`` (int or float): true/false, a fraction for an int and NaN or infinity are refused."""
    if isinstance(value, bool):
        raise ValueError("expected a number, not true/false")
    if kind is int and isinstance(value, float) and not value.is_integer():
        raise ValueError("expected an integer")
    number = kind(value)
    if not math.isfinite(number):
        raise ValueError("expected a finite number")
    return number


def _check_bounds(section: Any, where: str) -> None:
    """The least values of :data:`_AT_LEAST` and the positive keys of :data:`_POSITIVE`."""
    for name, least in _AT_LEAST.get(type(section), {}).items():
        value = getattr(section, name)
        if isinstance(value, tuple) and min(value, default=least) < least:
            raise InnregInputError(f"{where}.{name}: entries must be >= {least}, got {list(value)}")
        if not isinstance(value, tuple) and value < least:
            raise InnregInputError(f"{where}.{name}: must be >= {least}, got {value}")
    for name in _POSITIVE.get(type(section), ()):
        if getattr(section, name) <= 0:
            raise InnregInputError(f"{where}.{name}: must be > 0, got {getattr(section, name)}")


def _check_relations(section: Any, where: str) -> None:
    """The checks of values that no single bound covers: choices, parities and keys that go together."""
    if isinstance(section, ModelConfig):
        if section.dim not in (2, 3):
            raise InnregInputError(f"{where}.dim: must be 2 or 3, got {section.dim}")
        if section.ddc_kernel % 2 != 1:
            raise InnregInputError(f"{where}.ddc_kernel: must be odd, got {section.ddc_kernel}")
        if len(section.unet_decoder) < len(section.unet_encoder):
            raise InnregInputError(
                f"{where}.unet_decoder: needs at least one entry per unet_encoder entry, got "
                f"{len(section.unet_decoder)} for {len(section.unet_encoder)}"
            )
        if section.guide_slices and (section.dim != 3 or section.guide == TranslatorKind.NONE):
            raise InnregInputError(
                f"{where}.guide_slices: needs dim 3 and a guide (model.guide), got dim {section.dim}, "
                f"guide {section.guide.value}"
            )
    if isinstance(section, TrainConfig) and max(section.betas) >= 1:
        raise InnregInputError(f"{where}.betas: entries must be < 1, got {list(section.betas)}")
    if isinstance(section, RefineConfig):
        for prefix in ("", "affine_"):
            factors, steps = getattr(section, f"{prefix}factors"), getattr(section, f"{prefix}steps")
            if len(factors) != len(steps):
                raise InnregInputError(
                    f"{where}: {prefix}factors and {prefix}steps need one entry per level, "
                    f"got {list(factors)} and {list(steps)}"
                )
        if section.remap_bins == 1:
            raise InnregInputError(f"{where}.remap_bins: must be 0 (off) or >= 2, got {section.remap_bins}")
