"""A spatial map with its inverse, and the one way two maps are chained.

Every registration stage (network affine, network deformable, affine correction, demons, ...) returns
a :class:`Transform`; :meth:`Transform.then` is the only place where two stages' maps are composed,
so each composition (and its inverse in reverse order) is written once.

Convention (that of :mod:`innreg.core.warp`): ``ddf`` is a pull-back displacement ``(N, dim, *S)`` in
voxels on the fixed grid, ``warped(x) = moving(x + ddf(x))``; ``inverse`` maps the other way
(``warp(fixed, inverse)`` lies on the moving grid) or is ``None`` when nobody asked for it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from innreg.core.affine import affine_ddf, invert_affine, rescale_affine
from innreg.core.warp import compose, resize_field


@dataclass(frozen=True)
class Transform:
    """A map (displacement ``ddf``), its inverse (or ``None``) and, for affine maps, ``(A, t)``.

    Attributes:
        ddf: ``(N, dim, *S)`` pull-back displacement in voxels.
        inverse: ``(N, dim, *S)`` displacement of the inverse map, or ``None``.
        affine: ``(A, t)`` (``(N, dim, dim)``, ``(N, dim)`` voxels, the parametrisation of
            :func:`~innreg.core.affine.affine_ddf`) when the map is affine, else ``None``. Chaining
            after an affine map evaluates it exactly at the displaced points instead of
            interpolating its field (no error where the points leave the grid).
    """

    ddf: Tensor
    inverse: Tensor | None = None
    affine: tuple[Tensor, Tensor] | None = None

    @property
    def shape(self) -> tuple[int, ...]:
        """Spatial shape ``S`` of the fields."""
        return tuple(self.ddf.shape[2:])

    @classmethod
    def identity(cls, like: Tensor, with_inverse: bool = True) -> "Transform":
        """The identity on ``like``'s grid (``like``: ``(N, C, *S)``, giving device and dtype too); an
        affine map (``A = I``, ``t = 0``), so chaining an affine map after it keeps the parameters."""
        n, shape = like.shape[0], tuple(like.shape[2:])
        zero = torch.zeros(n, len(shape), *shape, device=like.device, dtype=like.dtype)
        eye = torch.eye(len(shape), device=like.device, dtype=like.dtype).expand(n, -1, -1).clone()
        return cls(zero, zero.clone() if with_inverse else None, (eye, zero.new_zeros(n, len(shape))))

    @classmethod
    def from_affine(
        cls, matrix: Tensor, translation: Tensor, shape: tuple[int, ...], with_inverse: bool = True
    ) -> "Transform":
        """The affine map ``p -> A (p - c) + c + t`` on a grid of ``shape`` (``c`` its centre)."""
        inverse = affine_ddf(*invert_affine(matrix, translation), shape) if with_inverse else None
        return cls(affine_ddf(matrix, translation, shape), inverse, (matrix, translation))

    def then(self, step: "Transform") -> "Transform":
        """The map of ``self`` followed by ``step`` (``step`` found on the image already warped by ``self``).

        ``warp(moving, result.ddf) == warp(warp(moving, self.ddf), step.ddf)`` (up to interpolation),
        i.e. ``x -> self(step(x))``; the inverse is ``step``'s inverse followed by ``self``'s. The
        inverse is ``None`` unless both have one. Two affine maps chain to the affine map of the product
        (exact, and ``affine`` stays known).
        """
        if step.shape != self.shape:
            raise ValueError(f"cannot chain a map on {step.shape} after one on {self.shape}; resize first")
        if self.affine is not None and step.affine is not None:
            # Two affine maps about the same centre c: x -> A1 (A2 (x - c) + t2) + c + t1.
            (a1, t1), (a2, t2) = self.affine, step.affine
            translation = torch.einsum("nij,nj->ni", a1, t2) + t1
            return Transform.from_affine(a1 @ a2, translation, self.shape, self.inverse is not None and step.inverse is not None)
        if self.affine is not None:
            ddf = affine_ddf(*self.affine, self.shape, inner=step.ddf)
        else:
            ddf = compose(self.ddf, step.ddf)
        inverse = None
        if self.inverse is not None and step.inverse is not None:
            inverse = compose(step.inverse, self.inverse)
        return Transform(ddf, inverse)

    def resized(self, shape: tuple[int, ...]) -> "Transform":
        """The same map on a grid of ``shape`` (fields resampled and rescaled, see
        :func:`~innreg.core.warp.resize_field`); an affine map keeps its exact parameters, rescaled."""
        if shape == self.shape:
            return self
        if self.affine is not None:
            return Transform.from_affine(*rescale_affine(*self.affine, self.shape, shape), shape, self.inverse is not None)
        inverse = None if self.inverse is None else resize_field(self.inverse, shape)
        return Transform(resize_field(self.ddf, shape), inverse)
