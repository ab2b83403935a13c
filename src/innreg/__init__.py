"""innreg: unsupervised multi-modal image registration via invertible translation (INNReg).

Public API::

    innreg.train(pairs_csv, run_dir, config)   -> path of model.pt
    innreg.load_model(path).register(moving, fixed) -> RegistrationResult
    innreg.apply(registration_dir, image, out, labels=False, inverse=False) -> Image
    innreg.evaluate(model, pairs_csv, out_dir) -> EvaluationSummary (per_pair.csv, summary.json, summary.md)
    innreg.Config, innreg.INNTranslator, innreg.INNReg, innreg.RegistrationModel, innreg.PairMetrics
"""

from innreg.config import Config
from innreg.evaluation import evaluate
from innreg.inference import RegistrationModel, RegistrationResult, load_model
from innreg.model import INNReg
from innreg.nn import INNTranslator
from innreg.results import EvaluationSummary, PairMetrics
from innreg.training import train
from innreg.warping import apply

__version__ = "0.1.0"
__all__ = [
    "Config",
    "EvaluationSummary",
    "INNReg",
    "INNTranslator",
    "PairMetrics",
    "RegistrationModel",
    "RegistrationResult",
    "__version__",
    "apply",
    "evaluate",
    "load_model",
    "train",
]
