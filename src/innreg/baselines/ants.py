"""ANTs SyN: the classical multi-modal baseline (``antspyx`` extra), in two recipes.

* ``ants-syn`` (:class:`AntsSyN`): affine then SyN, both with Mattes MI (the issue's reference row).
* ``ants-syn-cc`` (:class:`AntsSyNScript`): the recipe of ANTs' own ``antsRegistrationSyN.sh -t s``,
  as ANTsPy recreates it (``type_of_transform="antsRegistrationSyN[s]"``): rigid then affine with MI
  (32 bins, 25 % regular sampling), then SyN with local cross-correlation (radius 2, which ANTs squares, so
  an inverted contrast matches as well as a kept one), 100x70x50x20 iterations at shrink factors 8-4-2-1.
  On the whole-head phantom it is the stronger ANTs (``benchmarks/RESULTS.md`` section 14).

The arrays are handed to ANTs on a unit-spaced grid with zero origin and identity direction, so ANTs'
physical coordinates are voxel indices and its displacement fields come out in voxels along array
axes, which is innreg's convention. (ANTs' SyN regularisation variances are in voxel units anyway;
on anisotropic grids only the metric's neighbourhoods differ from a physical-space run.)

Each pair runs affine (Mattes MI) then SyN (Mattes MI). The deformable schedule defaults to
``(40, 20, 10)``: ANTsPy's default ``(40, 20, 0)`` never optimises the finest level.

Both recipes start from ANTs' default centre-of-mass alignment, which weights voxels by intensity. CT in
Hounsfield units is mostly negative (air at -1000), so its "mass" can sum to nearly zero and the start
lands outside the image (Mattes: "All samples map outside moving image buffer"; the CC recipe lost
every label of that pair). An image with negative values is therefore shifted by its minimum before it
goes to ANTs: MI and local CC do not change under a shift, and the centre of mass becomes the head's.
Non-negative images go as they are: shifting them by their minimum (about 0.1 % of their range on the
phantom) moved single pairs by up to 0.2 Dice, ANTs' optimisation being that sensitive to its start.
``start="identity"`` starts from the pair as it lies on its grid instead; on the first 10 training pairs
of four whole-head sets (PD, T2, FLAIR, windowed CT -> T1; ``benchmarks/RESULTS.md`` section 23) it
moved mean Dice by -0.031 / +0.004 / +0.050 / -0.022 (Mattes) and +0.003 / -0.003 / -0.030 / +0.008
(CC recipe), so ANTs' own default stays.
"""

from __future__ import annotations

import os
import tempfile
import time
from contextlib import contextmanager
from typing import Iterator

import numpy as np

from innreg.baselines.base import Method, pair_arrays
from innreg.data import normalize_percentile
from innreg.errors import InnregInputError
from innreg.inference import RegistrationResult


# ``initial_transform`` of ``ants.registration`` per start (none given: ANTs' intensity centre of mass).
START_TRANSFORMS = {"centre-of-mass": {}, "identity": {"initial_transform": "Identity"}}


@contextmanager
def ants_random_seed(seed: int) -> Iterator[None]:
    """Seed ANTs' metric sampling for the calls inside. Without a seed ANTs seeds from the clock, and
    Mattes SyN's Dice moved by up to 0.05 between runs on 3 whole-head pairs (one thread); ANTs reads
    ``ANTS_RANDOM_SEED`` when it is given no ``--random-seed``, and a value the user set wins."""
    before = os.environ.get("ANTS_RANDOM_SEED")
    os.environ["ANTS_RANDOM_SEED"] = before or str(seed)
    try:
        yield
    finally:
        if before is None:
            del os.environ["ANTS_RANDOM_SEED"]


def import_ants():
    """The ``ants`` module, or an :class:`InnregInputError` saying how to install it."""
    try:
        import ants
    except ImportError as err:
        raise InnregInputError(
            "ants-syn: needs the antspyx package (pip install 'innreg[baselines]' or pip install antspyx)"
        ) from err
    return ants


class AntsSyN(Method):
    """Affine + SyN registration by ANTs with Mattes MI for both stages.

    Args:
        dim: 2 or 3.
        reg_iterations: SyN iterations per level, coarsest first (shrink factors ``2**k`` down to 1).
        grad_step: SyN gradient step.
        flow_sigma: smoothing of the update field (voxels).
        total_sigma: smoothing of the total field (voxels).
        seed: seed of ANTs' random metric sampling (see :func:`ants_random_seed`).
        start: the linear stage's start: ``"centre-of-mass"`` (ANTs' default: the images' intensity
            centres of mass aligned by a translation) or ``"identity"`` (the pair as it lies on its grid).
    """

    name = "ants-syn"

    def __init__(
        self,
        dim: int = 2,
        reg_iterations: tuple[int, ...] = (40, 20, 10),
        grad_step: float = 0.2,
        flow_sigma: float = 3.0,
        total_sigma: float = 0.0,
        seed: int = 1,
        start: str = "centre-of-mass",
    ) -> None:
        super().__init__(dim)
        if start not in START_TRANSFORMS:
            raise InnregInputError(f"ants-syn: start {start!r} is not one of {', '.join(START_TRANSFORMS)}")
        if not reg_iterations or reg_iterations[-1] <= 0:
            raise InnregInputError(f"ants-syn: reg_iterations {reg_iterations} must end with a positive count (finest level)")
        self.ants = import_ants()
        self.reg_iterations = tuple(int(v) for v in reg_iterations)
        self.grad_step = grad_step
        self.flow_sigma = flow_sigma
        self.total_sigma = total_sigma
        self.seed = int(seed)
        self.start = start

    def registration_arguments(self) -> dict:
        """The keyword arguments of ``ants.registration`` that make this recipe."""
        return START_TRANSFORMS[self.start] | {
            "type_of_transform": "SyN",
            "aff_metric": "mattes",
            "syn_metric": "mattes",
            "reg_iterations": self.reg_iterations,
            "grad_step": self.grad_step,
            "flow_sigma": self.flow_sigma,
            "total_sigma": self.total_sigma,
        }

    def _image(self, array: np.ndarray):
        return self.ants.from_numpy(
            np.ascontiguousarray(array, dtype=np.float32),
            origin=(0.0,) * self.dim,
            spacing=(1.0,) * self.dim,
            direction=np.eye(self.dim),
        )

    def _field(self, reference, moving, transforms: list[str], prefix: str) -> np.ndarray:
        """Compose ``transforms`` into one displacement on ``reference``'s grid, ``(dim, *S)`` voxels."""
        path = self.ants.apply_transforms(reference, moving, transforms, compose=prefix)
        if path is None:
            raise RuntimeError("ants-syn: ANTs did not write the composed displacement field")
        field = self.ants.image_read(path).numpy()  # (*S, dim), component k along array axis k
        return np.moveaxis(field, -1, 0).astype(np.float32)

    def register(self, moving, fixed, moving_seg=None) -> RegistrationResult:
        """Register one pair; ``seconds`` covers ``ants.registration`` and the label warp, not the
        extraction of the displacement fields (bookkeeping for the metrics)."""
        ants = self.ants
        moving_arr, fixed_arr, seg_arr = pair_arrays(moving, fixed, moving_seg, self.dim)
        # non-negative for the centre-of-mass start (module docstring); the warped image gets it back
        moving_shift, fixed_shift = min(float(moving_arr.min()), 0.0), min(float(fixed_arr.min()), 0.0)
        fixed_img, moving_img = self._image(fixed_arr - fixed_shift), self._image(moving_arr - moving_shift)
        with tempfile.TemporaryDirectory(prefix="innreg-ants-") as tmp, ants_random_seed(self.seed):
            start = time.perf_counter()
            reg = ants.registration(fixed_img, moving_img, outprefix=f"{tmp}/reg_", **self.registration_arguments())
            warped_seg = None
            if seg_arr is not None:
                warped = ants.apply_transforms(
                    fixed_img, self._image(seg_arr), reg["fwdtransforms"], interpolator="genericLabel"
                )
                warped_seg = np.rint(warped.numpy()).astype(seg_arr.dtype)
            seconds = time.perf_counter() - start
            ddf = self._field(fixed_img, moving_img, reg["fwdtransforms"], f"{tmp}/fwd_")
            inverse_ddf = self._field(moving_img, fixed_img, reg["invtransforms"], f"{tmp}/inv_")
        return RegistrationResult(
            warped=(reg["warpedmovout"].numpy() + moving_shift).astype(np.float32),
            translated=normalize_percentile(moving_arr),
            ddf=ddf,
            inverse_ddf=inverse_ddf,
            warped_seg=warped_seg,
            seconds=seconds,
        )


class AntsSyNScript(AntsSyN):
    """Rigid + affine (MI) then SyN (local cross-correlation): ``antsRegistrationSyN.sh -t s``.

    ANTsPy fixes this recipe's schedule and metrics, so it takes no tuning arguments. Tried against
    the alternatives a user might reach for on 10 training pairs of two whole-head tune sets (PD and CT
    -> T1, mean Dice): this recipe 0.729 / 0.687, its B-spline SyN variant 0.730 / 0.667, ``SyNCC``
    0.705 / 0.678, :class:`AntsSyN`'s Mattes SyN 0.590 / 0.612 (0.626 / 0.658 as ``SyNRA`` with
    100x70x50x20), the quick script's recipe (MI throughout, no finest SyN level) 0.580 / 0.640.
    """

    name = "ants-syn-cc"

    def __init__(self, dim: int = 2, seed: int = 1, start: str = "centre-of-mass") -> None:
        super().__init__(dim, seed=seed, start=start)

    def registration_arguments(self) -> dict:
        return START_TRANSFORMS[self.start] | {"type_of_transform": "antsRegistrationSyN[s]"}
