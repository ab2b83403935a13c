"""innreg: unsupervised multi-modal image registration via invertible translation (INNReg).

Public API::

    innreg.train(pairs_csv, run_dir, config)   -> path of model.pt
    innreg.load_model(path).register(moving, fixed) -> RegistrationResult
    innreg.apply(registration_dir, image, out, labels=False, inverse=False, device="cpu") -> Image
    innreg.evaluate(model, pairs_csv, out_dir) -> EvaluationSummary (per_pair.csv, summary.json, summary.md)
    innreg.Config, innreg.INNTranslator, innreg.INNReg, innreg.RegistrationModel, innreg.PairMetrics

The names are imported on first use, so ``import innreg`` (and ``innreg --help``) does not load torch.
"""

from typing import TYPE_CHECKING

from innreg.lazy import lazy_exports

if TYPE_CHECKING:  # the same names, typed, for type checkers and IDEs
    from innreg.config import Config
    from innreg.evaluation import evaluate
    from innreg.inference import RegistrationModel, RegistrationResult, load_model
    from innreg.model import INNReg
    from innreg.nn import INNTranslator
    from innreg.results import EvaluationSummary, PairMetrics
    from innreg.training import train
    from innreg.warping import apply

__version__ = "0.1.0"
_EXPORTS = {
    "config": ("Config",),
    "evaluation": ("evaluate",),
    "inference": ("RegistrationModel", "RegistrationResult", "load_model"),
    "model": ("INNReg",),
    "nn": ("INNTranslator",),
    "results": ("EvaluationSummary", "PairMetrics"),
    "training": ("train",),
    "warping": ("apply",),
}
__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)
__all__ += ["__version__"]
