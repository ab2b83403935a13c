"""A 2D translator run on every slice of a 3D image: the 3D refinement's guide (``model.guide_slices``).

A modality translation is a local intensity map that 2D slices show as well as volumes do, and a 2D
network learns it from far fewer voxels a step. On a CPU budget the 3D INN, trained jointly at half
resolution, stays at its floor (translated NCC 0.503 against 0.521 for the raw image on a fresh PD -> T1
set); a 2D INN trained on 2000 batches of slices of the same aligned training volumes, applied slice
by slice, reached 0.735 and lifted Dice 0.766 -> 0.773 (``benchmarks/RESULTS.md`` section 27).
"""

from __future__ import annotations

from torch import Tensor, nn


class SliceWise(nn.Module):
    """Run a 2D image-to-image module on each slice of a 3D image across its last spatial axis.

    Args:
        net: a 2D module mapping ``(N, C, H, W) -> (N, C, H, W)``; its ``inverse`` (when it has one) is
            run slice-wise too, so an invertible 2D translator stays exactly invertible.

    Shapes:
        ``forward``/``inverse``: ``(N, C, X, Y, Z) -> (N, C, X, Y, Z)``, the ``Z`` slices ``(X, Y)`` as
        a batch of ``N * Z`` 2D images.
    """

    # The spatial axis across which the volume is cut into slices; the translator stages crop one slice
    # thick along it (a thicker crop would only be several 2D samples at once).
    slice_axis = 2

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net
        # Local like the module it wraps (see INNTranslator.local): the stages may train it on crops.
        self.local = getattr(net, "local", False)
        if hasattr(net, "inverse"):
            self.inverse = self._inverse

    @property
    def exact_inverse(self) -> bool:
        return bool(getattr(self.net, "exact_inverse", False))

    def forward(self, x: Tensor) -> Tensor:
        return self._sliced(self.net, x)

    def _inverse(self, y: Tensor) -> Tensor:
        return self._sliced(self.net.inverse, y)

    def _sliced(self, fn, x: Tensor) -> Tensor:
        if x.dim() != 5:
            raise ValueError(f"expected a 3D image (N, C, X, Y, Z), got shape {tuple(x.shape)}")
        slices = x.movedim(2 + self.slice_axis, 1)  # (N, Z, C, X, Y)
        n, sz = slices.shape[:2]
        out = fn(slices.reshape(n * sz, *slices.shape[2:]))
        return out.reshape(n, sz, *out.shape[1:]).movedim(1, 2 + self.slice_axis)
