"""Every setting of a run in one serialisable object: model, losses, training, test-time refinement.

A run's ``model.pt`` stores ``Config.to_dict()`` beside the weights, so a model can be rebuilt from
its checkpoint alone. YAML config files hold the same nested structure (any subset of keys).
The sections and their checks live in :mod:`innreg.config.sections`, :class:`Config` in
:mod:`innreg.config.run`; the enums the sections use are re-exported here.
"""

from innreg.config.run import SECTIONS, Config, refine_overrides_from_yaml
from innreg.config.sections import LossConfig, ModelConfig, RefineConfig, TrainConfig
from innreg.core.enums import (
    DistilTarget,
    FineUpdate,
    LrSchedule,
    Precision,
    RefineInit,
    RegInput,
    RegLossKind,
    SqueezeKind,
    SubnetKind,
    TranslatorKind,
)

__all__ = [
    "SECTIONS", "Config", "LossConfig", "ModelConfig", "RefineConfig", "TrainConfig", "refine_overrides_from_yaml",
    "DistilTarget", "FineUpdate", "LrSchedule", "Precision", "RefineInit", "RegInput", "RegLossKind", "SqueezeKind",
    "SubnetKind", "TranslatorKind",
]
