"""The method interface shared by innreg and its baselines, and how their cost is measured."""

from __future__ import annotations

import os
import resource
import sys
from abc import ABC, abstractmethod
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch

from innreg.config import Config
from innreg.data import PairRecord, read_manifest
from innreg.errors import InnregInputError
from innreg.inference import RegistrationResult, as_array


@dataclass
class FitInfo:
    """Cost of fitting a method.

    Attributes:
        train_seconds: wall seconds spent in training steps (0 for methods that do not train);
            summed over resumed runs.
        peak_memory_mb: peak resident memory of this process so far (``getrusage`` max RSS), in MiB.
            It covers everything the process did before, so it is a per-method number only when each
            method runs in its own process (as the benchmark does).
        peak_gpu_memory_mb: peak CUDA memory allocated by torch in this process, in MiB (``None`` on CPU).
    """

    train_seconds: float
    peak_memory_mb: float
    peak_gpu_memory_mb: float | None = None


def peak_memory() -> tuple[float, float | None]:
    """``(max RSS of this process in MiB, peak torch CUDA allocation in MiB or None)``."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    rss_mb = rss / 2**20 if sys.platform == "darwin" else rss / 2**10  # bytes on macOS, KiB on Linux
    gpu_mb = torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() and torch.cuda.is_initialized() else None
    return rss_mb, gpu_mb


def fit_info(train_seconds: float) -> FitInfo:
    """A :class:`FitInfo` with the current peak memory of this process."""
    rss_mb, gpu_mb = peak_memory()
    return FitInfo(train_seconds=train_seconds, peak_memory_mb=rss_mb, peak_gpu_memory_mb=gpu_mb)


class Method(ABC):
    """A registration method the benchmark can fit and run.

    Attributes:
        name: the registry name (``make_method(name)``).
        dim: spatial dimension of the images it registers (2 or 3).
        trains: whether :meth:`fit` learns from the training pairs (and so uses the step budget).
    """

    name: str
    trains: bool = False

    def __init__(self, dim: int = 2) -> None:
        if dim not in (2, 3):
            raise InnregInputError(f"--dim: must be 2 or 3, got {dim}")
        self.dim = dim

    def fit(
        self,
        train_pairs: str | Path | Sequence[PairRecord],
        out_dir: str | Path,
        steps: int,
        device: str = "auto",
        progress: bool = True,
    ) -> FitInfo:
        """Learn from ``train_pairs`` (a manifest CSV or its records) for ``steps`` steps, keeping any
        files in ``out_dir``; a method whose finished fit is found in ``out_dir`` loads it instead.

        Methods that learn nothing (``trains = False``) keep this default, which only reports memory.
        """
        return fit_info(0.0)

    @abstractmethod
    def register(self, moving, fixed, moving_seg=None) -> RegistrationResult:
        """Register ``moving`` onto ``fixed``.

        Args:
            moving, fixed: arrays of shape ``S`` (2D or 3D) on one grid, original intensities.
            moving_seg: optional label map on the moving grid, warped with nearest-neighbour-like
                label interpolation into ``RegistrationResult.warped_seg``.

        Returns:
            A :class:`~innreg.inference.RegistrationResult`; its ``seconds`` is the wall time of the
            registration (and warping) alone.
        """


def pair_arrays(moving, fixed, moving_seg, dim: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Check a pair (and optional moving label map) is ``dim``-D on one grid and return it as arrays."""
    moving_arr, fixed_arr = as_array(moving, "moving"), as_array(fixed, "fixed")
    if moving_arr.ndim != dim:
        raise InnregInputError(f"moving: this method registers {dim}D images, got {moving_arr.ndim}D")
    if moving_arr.shape != fixed_arr.shape:
        raise InnregInputError(
            f"moving {moving_arr.shape} and fixed {fixed_arr.shape} differ in shape; resample onto one grid first"
        )
    seg_arr = None
    if moving_seg is not None:
        seg_arr = as_array(moving_seg, "moving_seg")
        if seg_arr.shape != moving_arr.shape:
            raise InnregInputError(f"moving_seg {seg_arr.shape} does not match moving {moving_arr.shape}")
    return moving_arr, fixed_arr, seg_arr


def pair_records(pairs: str | Path | Sequence[PairRecord]) -> list[PairRecord]:
    """The records of a manifest CSV (or the given records), refusing an empty list."""
    records = read_manifest(pairs) if isinstance(pairs, (str, Path)) else list(pairs)
    if not records:
        raise InnregInputError(f"{pairs}: no pairs")
    return records


def model_info(path: Path, config: Config) -> dict | None:
    """The ``info`` dict (``steps``, ``train_seconds``, ...) of a finished ``model.pt``, or ``None``.

    Raises:
        InnregInputError: the model there was trained under another config than ``config`` (apart
            from ``train.steps``, ``train.device`` and the test-time ``refine`` section), so reusing it
            would mislabel a result.
    """
    if not path.is_file():
        return None
    saved = torch.load(path, map_location="cpu", weights_only=False)

    def comparable(settings: dict) -> dict:
        # Refinement is test-time only, so a model is reusable under any refine settings.
        training = {k: v for k, v in settings.items() if k != "refine"}
        return training | {"train": {k: v for k, v in settings["train"].items() if k not in ("steps", "device")}}

    if comparable(saved.get("config", {})) != comparable(config.to_dict()):
        raise InnregInputError(f"{path}: trained under another config than this run; delete its folder or use another --out")
    return saved.get("info", {})


def invert_ddf(ddf: np.ndarray, iterations: int = 20) -> np.ndarray:
    """Inverse of an innreg-convention displacement ``(dim, *S)`` (voxels), by fixed-point iteration.

    For peers that return only the forward map (elastix, ConvexAdam); see
    :func:`innreg.core.warp.invert_field` for where the iteration converges.
    """
    from innreg.core.warp import invert_field

    return invert_field(torch.from_numpy(np.ascontiguousarray(ddf, dtype=np.float32))[None], iterations)[0].numpy()


def import_peer(module: str, method: str, package: str):
    """Import an optional peer's module, or raise an :class:`InnregInputError` saying how to install it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise InnregInputError(
            f"{method}: needs the {package} package (pip install 'innreg[peers]' or pip install {package})"
        ) from err


@contextmanager
def quiet_stdout() -> Iterator[None]:
    """Silence a C++ library's prints to file descriptor 1 (Greedy, elastix): they bypass ``sys.stdout``."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 1)
            yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)
