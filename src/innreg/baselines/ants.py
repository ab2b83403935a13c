"""ANTs SyN with Mattes mutual information: the classical multi-modal baseline (``antspyx`` extra).

The arrays are handed to ANTs on a unit-spaced grid with zero origin and identity direction, so ANTs'
physical coordinates are voxel indices and its displacement fields come out in voxels along array
axes, which is innreg's convention. (ANTs' SyN regularisation variances are in voxel units anyway;
on anisotropic grids only the metric's neighbourhoods differ from a physical-space run.)

Each pair runs affine (Mattes MI) then SyN (Mattes MI). The deformable schedule defaults to
``(40, 20, 10)``: ANTsPy's default ``(40, 20, 0)`` never optimises the finest level.
"""

from __future__ import annotations

import tempfile
import time

import numpy as np

from innreg.baselines.base import Method, pair_arrays
from innreg.data import normalize_percentile
from innreg.errors import InnregInputError
from innreg.inference import RegistrationResult


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
    """

    name = "ants-syn"

    def __init__(
        self,
        dim: int = 2,
        reg_iterations: tuple[int, ...] = (40, 20, 10),
        grad_step: float = 0.2,
        flow_sigma: float = 3.0,
        total_sigma: float = 0.0,
    ) -> None:
        super().__init__(dim)
        if not reg_iterations or reg_iterations[-1] <= 0:
            raise InnregInputError(f"ants-syn: reg_iterations {reg_iterations} must end with a positive count (finest level)")
        self.ants = import_ants()
        self.reg_iterations = tuple(int(v) for v in reg_iterations)
        self.grad_step = grad_step
        self.flow_sigma = flow_sigma
        self.total_sigma = total_sigma

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
        fixed_img, moving_img = self._image(fixed_arr), self._image(moving_arr)
        with tempfile.TemporaryDirectory(prefix="innreg-ants-") as tmp:
            start = time.perf_counter()
            reg = ants.registration(
                fixed_img,
                moving_img,
                type_of_transform="SyN",
                aff_metric="mattes",
                syn_metric="mattes",
                reg_iterations=self.reg_iterations,
                grad_step=self.grad_step,
                flow_sigma=self.flow_sigma,
                total_sigma=self.total_sigma,
                outprefix=f"{tmp}/reg_",
            )
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
            warped=reg["warpedmovout"].numpy().astype(np.float32),
            translated=normalize_percentile(moving_arr),
            ddf=ddf,
            inverse_ddf=inverse_ddf,
            warped_seg=warped_seg,
            seconds=seconds,
        )
