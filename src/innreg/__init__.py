"""innreg: unsupervised multi-modal image registration via invertible translation (INNReg)."""

__version__ = "0.1.0"
