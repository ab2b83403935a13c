"""Greedy (PICSL) with normalised mutual information, affine + deformable (``peers`` extra).

Settings (for multi-modal pairs on one grid):

* affine: rigid first (``-a -dof 6 -ia-identity -m NMI -n 100x50x10``), then a full affine started
  from it (``-a -dof 12 -ia <rigid>``, same schedule). The pair shares one grid, so the identity
  (equal here to ``-ia-image-centers``) is the right start; ``-ia-moments`` matches intensity
  moments, which differ between modalities. A 12-parameter affine straight from the identity
  sometimes ran off (L-BFGS line-search failures, Dice 0.11 against 0.56 unregistered on a 96x80
  phantom pair); started from the rigid result, with the fixed seed below, it did not on the pairs
  tried. On 1 of 50 fresh whole-head test pairs (``benchmarks/RESULTS.md`` section 23) the rigid
  stage itself ran off (a line-search failure and a 108-voxel shift; the affine from it stretched an
  axis 20-fold, then NaN fields: every label lost). So each linear stage is checked
  (:func:`plausible_affine`), as a user who looked at it would: a rigid stage that ran off is
  dropped and the affine starts from the identity; an affine that ran off is dropped and the
  deformable stage starts from the last plausible stage (or the identity). Both images are
  normalised to [0, 1] by percentiles first (the warped output keeps the moving image's own
  intensities).
* deformable: ``-it <affine> -m NMI -n 100x50x20 -s 2.0vox 0.5vox`` (Greedy's usual multi-modal
  recipe: 2 voxels of smoothing of the gradient, 0.5 of the total field), with ``-oinv`` for the
  inverse warp; labels are resliced with ``-ri LABEL 0.2vox``.
* levels: as many of these as keep the coarsest level at least 32 voxels wide (3 for 192x160, 2 for
  64x64 or 96x80): on a 64x64 phantom pair, three levels (16x16 at the coarsest) ended below
  the unregistered Dice (0.31 against 0.50).
* ``-seed 1`` and one thread: Greedy's affine stage samples at random (``-seed 0``, its default, is
  stochastic); on a 96x80 pair the Dice ranged 0.65-0.80 over seeds 1-6, and multi-threaded runs
  differed run to run, so the seed and one thread make it repeatable. More threads where ITK's
  setting asks for them (:func:`innreg.threads.itk_threads`, as ANTsPy and itk-elastix read it;
  ``innreg benchmark --threads``), so a timed comparison gives every method the same threads.

Tuned on the 10 training pairs of ``innreg phantom --moving t2 --fixed t1 --n 12 --size 192x160
--seed 7`` (identity Dice 0.445), mean Dice. With a direct 12-parameter affine: ``-s 2.0vox 0.5vox``
0.799, ``-s 3.0vox 0.5vox`` 0.807, ``-s 1.5vox 1.0vox`` 0.799, ``-e 0.5`` 0.743, iterations
200x100x50 0.805 (slower); so the usual recipe stays. The final set-up (normalised intensities,
rigid then affine, one thread, seed not yet fixed): 0.806. Greedy's stationary-velocity mode
(``-sv``) is not used: it was worse on real PD -> T1 slices and failed in 3D.

The arrays go to Greedy as in-memory SimpleITK images with unit spacing, zero origin and identity
direction, so its physical (LPS) coordinates are voxel indices in SimpleITK's reversed axis order;
the composed displacement (``-rc``) is turned into innreg's convention by reversing its components.
"""

from __future__ import annotations

import tempfile
import time

import numpy as np

from innreg.baselines.base import Method, import_peer, pair_arrays, quiet_stdout
from innreg.data import normalize_percentile
from innreg.inference import RegistrationResult
from innreg.threads import itk_threads


# Heads differ in size by far less than 2x, and pairs on one grid are misaligned by far less than a
# quarter of it; a linear stage beyond these has run off (module docstring).
PLAUSIBLE_SCALE = (0.5, 2.0)
PLAUSIBLE_CENTRE_SHIFT = 0.25


def plausible_affine(matrix: np.ndarray, shape: tuple[int, ...]) -> bool:
    """Whether a Greedy affine (RAS, voxel units on innreg's unit grid) for an image of ``shape`` is
    finite, keeps orientation, scales every direction within :data:`PLAUSIBLE_SCALE` and moves the
    image centre by less than :data:`PLAUSIBLE_CENTRE_SHIFT` of the grid's shortest side."""
    dim = len(shape)
    matrix = np.asarray(matrix, dtype=np.float64)
    linear, shift = matrix[:dim, :dim], matrix[:dim, dim]
    if not np.isfinite(matrix).all() or np.linalg.det(linear) <= 0:
        return False
    singular = np.linalg.svd(linear, compute_uv=False)
    # The centre in RAS: ITK's x, y(, z) run along the reversed array axes, and RAS negates x and y.
    centre = (np.asarray(shape[::-1], dtype=np.float64) - 1) / 2 * np.array([-1.0, -1.0, 1.0][:dim])
    moved = np.linalg.norm(linear @ centre + shift - centre)
    return bool(PLAUSIBLE_SCALE[0] <= singular.min() and singular.max() <= PLAUSIBLE_SCALE[1]
                and moved < PLAUSIBLE_CENTRE_SHIFT * min(shape))


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
        seed: int = 1,
    ) -> None:
        super().__init__(dim)
        self.greedy = import_peer("picsl_greedy", self.name, "picsl-greedy")
        self.sitk = import_peer("SimpleITK", self.name, "picsl-greedy")
        self.affine_iterations = tuple(int(v) for v in affine_iterations)
        self.iterations = tuple(int(v) for v in iterations)
        self.smooth = f"{smooth_gradient}vox {smooth_field}vox"
        self.step = step
        self.seed = int(seed)

    @staticmethod
    def schedule(iterations: tuple[int, ...], shape: tuple[int, ...]) -> str:
        """Greedy's ``-n`` for an image of ``shape``: the finest levels of ``iterations`` whose coarsest
        level keeps at least 32 voxels along the shortest axis (level k halves the grid k times)."""
        levels = 1 + max(0, int(np.floor(np.log2(min(shape) / 32))))
        return "x".join(str(v) for v in iterations[-levels:])

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
        d = f"-d {self.dim} -V 0 -threads {itk_threads()} -seed {self.seed}"
        affine_n, deform_n = self.schedule(self.affine_iterations, fixed_arr.shape), self.schedule(self.iterations, fixed_arr.shape)
        images = {"fix": self._image(normalize_percentile(fixed_arr)), "mov": self._image(normalize_percentile(moving_arr))}
        with quiet_stdout():
            start = time.perf_counter()
            g.execute(f"{d} -i fix mov -a -dof 6 -ia-identity -m NMI -n {affine_n} -o rig", **images, rig=None)
            rigid_ok = plausible_affine(g["rig"], fixed_arr.shape)
            affine_start = "-ia rig" if rigid_ok else "-ia-identity"
            g.execute(f"{d} -i fix mov -a -dof 12 {affine_start} -m NMI -n {affine_n} -o aff", aff=None)
            # the last linear stage that did not run off (module docstring), "" for none
            linear = "aff" if plausible_affine(g["aff"], fixed_arr.shape) else "rig" if rigid_ok else ""
            initial = f"-it {linear}" if linear else ""
            forward, inverse = f"warp {linear}".rstrip(), f"{linear},-1 winv" if linear else "winv"
            g.execute(
                f"{d} -i fix mov {initial} -m NMI -n {deform_n} -s {self.smooth} -e {self.step} -o warp -oinv winv",
                warp=None, winv=None,
            )  # fmt: skip
            g.execute(f"{d} -rf fix -rm orig res -r {forward}", orig=self._image(moving_arr), res=None)
            warped_seg = None
            if seg_arr is not None:
                # Greedy returns no in-memory image for LABEL reslicing, so that one goes through a file.
                with tempfile.TemporaryDirectory(prefix="innreg-greedy-") as tmp:
                    path = f"{tmp}/seg.nii.gz"
                    g.execute(f"{d} -rf fix -ri LABEL 0.2vox -rm seg {path} -r {forward}", seg=self._image(seg_arr))
                    warped_seg = np.rint(self.sitk.GetArrayFromImage(self.sitk.ReadImage(path))).astype(seg_arr.dtype)
            seconds = time.perf_counter() - start
            g.execute(f"{d} -rf fix -rc comp -r {forward}", comp=None)
            g.execute(f"{d} -rf mov -rc inv -r {inverse}", inv=None)
        return RegistrationResult(
            warped=self.sitk.GetArrayFromImage(g["res"]).astype(np.float32),
            translated=normalize_percentile(moving_arr),
            ddf=self._field(g["comp"]),
            inverse_ddf=self._field(g["inv"]),
            warped_seg=warped_seg,
            seconds=seconds,
        )
