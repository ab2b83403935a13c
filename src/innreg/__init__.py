"""innreg: unsupervised multi-modal image registration via invertible translation (INNReg).

Public API::

    innreg.train(pairs_csv, run_dir, config)   -> path of model.pt
    innreg.load_model(path).register(moving, fixed) -> RegistrationResult
    innreg.apply(registration_dir, image, out, labels=False, inverse=False) -> Image
    innreg.Config, innreg.INNTranslator, innreg.INNReg
"""

from innreg.config import Config
from innreg.inference import RegistrationResult, load_model
from innreg.model import INNReg
from innreg.nn import INNTranslator
from innreg.training import train
from innreg.warping import apply

__version__ = "0.1.0"
__all__ = ["Config", "apply", "INNReg", "INNTranslator", "RegistrationResult", "load_model", "train", "__version__"]
