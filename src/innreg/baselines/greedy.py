"""Greedy (PICSL) with normalised mutual information, affine + deformable (``peers`` extra).

Settings (for multi-modal pairs on one grid):

* affine: ``-a -dof 12 -ia-identity -m NMI -n 100x50x10``. The pair shares one grid, so the identity
  (equal here to ``-ia-image-centers``) is the right start; ``-ia-moments`` matches intensity moments,
  which differ between modalities and started it off-target.
* deformable: ``-it <affine> -m NMI -n 100x50x20 -s 2.0vox 0.5vox`` (Greedy's usual multi-modal
  recipe: 2 voxels of smoothing of the gradient, 0.5 of the total field), with ``-oinv`` for the
  inverse warp; labels are resliced with ``-ri LABEL 0.2vox``.

Tuned on ``innreg phantom --moving t2 --fixed t1 --n 12 --size 192x160 --seed 7`` (its 10 training
pairs): the step size ``-e`` and the smoothing were compared there (see the module's test and the
benchmark notes). Greedy's stationary-velocity mode (``-sv``) is not used: it was worse on real
PD -> T1 slices and failed in 3D.

The arrays go to Greedy as in-memory SimpleITK images with unit spacing, zero origin and identity
direction, so its physical (LPS) coordinates are voxel indices in SimpleITK's reversed axis order;
the composed displacement (``-rc``) is turned into innreg's convention by reversing its components.
"""

from __future__ import annotations

import os
import tempfile
import time

import numpy as np

from innreg.baselines.base import Method, import_peer, pair_arrays, quiet_stdout
from innreg.data import normalize_percentile
from innreg.inference import RegistrationResult


class Greedy(Method):
    """Affine then deformable Greedy registration with NMI.

    Args:
        dim: 2 or 3.
        affine_iterations: affine iterations per level, coarsest first.
        iterations: deformable iterations per level, coarsest first.
        smooth_gradient, smooth_field: Greedy's ``-s`` sigmas in voxels (update, total field).
        step: Greedy's ``-e`` step size (voxels).
    """

    name = "greedy"

    def __init__(
        self,
        dim: int = 2,
        affine_iterations: tuple[int, ...] = (100, 50, 10),
        iterations: tuple[int, ...] = (100, 50, 20),
        smooth_gradient: float = 2.0,
        smooth_field: float = 0.5,
        step: float = 1.0,
        affine_dof: int = 12,
    ) -> None:
        super().__init__(dim)
        self.greedy = import_peer("picsl_greedy", self.name, "picsl-greedy")
        self.sitk = import_peer("SimpleITK", self.name, "picsl-greedy")
        self.affine_iterations = "x".join(str(int(v)) for v in affine_iterations)
        self.iterations = "x".join(str(int(v)) for v in iterations)
        self.smooth = f"{smooth_gradient}vox {smooth_field}vox"
        self.step = step
        self.affine_dof = int(affine_dof)

    def _image(self, array: np.ndarray):
        return self.sitk.GetImageFromArray(np.ascontiguousarray(array, dtype=np.float32))

    def _field(self, image) -> np.ndarray:
        """A Greedy/ITK displacement image as innreg's ``(dim, *S)`` voxels along array axes."""
        field = self.sitk.GetArrayFromImage(image)  # (*S, dim), components in x, y(, z) = reversed axes
        return np.moveaxis(field[..., ::-1], -1, 0).astype(np.float32)

    def register(self, moving, fixed, moving_seg=None) -> RegistrationResult:
        """Register one pair; ``seconds`` covers both Greedy stages and the reslicing, not the
        extraction of the composed fields (bookkeeping for the metrics)."""
        moving_arr, fixed_arr, seg_arr = pair_arrays(moving, fixed, moving_seg, self.dim)
        g = (self.greedy.Greedy2D if self.dim == 2 else self.greedy.Greedy3D)()
        d = f"-d {self.dim} -V 0 -threads 1"
        images = {"fix": self._image(normalize_percentile(fixed_arr)), "mov": self._image(normalize_percentile(moving_arr))}
        with quiet_stdout():
            start = time.perf_counter()
            g.execute(f"{d} -i fix mov -a -dof 6 -ia-identity -m NMI -n {self.affine_iterations} -o rig", **images, rig=None)
            g.execute(f"{d} -i fix mov -a -dof 12 -ia rig -m NMI -n {self.affine_iterations} -o aff", aff=None)
            g.execute(
                f"{d} -i fix mov -it aff -m NMI -n {self.iterations} -s {self.smooth} -e {self.step} -o warp -oinv winv",
                warp=None, winv=None,
            )  # fmt: skip
            g.execute(f"{d} -rf fix -rm orig res -r warp aff", orig=self._image(moving_arr), res=None)
            warped_seg = None
            if seg_arr is not None:
                # Greedy returns no in-memory image for LABEL reslicing, so that one goes through a file.
                with tempfile.TemporaryDirectory(prefix="innreg-greedy-") as tmp:
                    path = f"{tmp}/seg.nii.gz"
                    g.execute(f"{d} -rf fix -ri LABEL 0.2vox -rm seg {path} -r warp aff", seg=self._image(seg_arr))
                    warped_seg = np.rint(self.sitk.GetArrayFromImage(self.sitk.ReadImage(path))).astype(seg_arr.dtype)
            seconds = time.perf_counter() - start
            g.execute(f"{d} -rf fix -rc comp -r warp aff", comp=None)
            g.execute(f"{d} -rf mov -rc inv -r aff,-1 winv", inv=None)
        return RegistrationResult(
            warped=self.sitk.GetArrayFromImage(g["res"]).astype(np.float32),
            translated=normalize_percentile(moving_arr),
            ddf=self._field(g["comp"]),
            inverse_ddf=self._field(g["inv"]),
            warped_seg=warped_seg,
            seconds=seconds,
        )
