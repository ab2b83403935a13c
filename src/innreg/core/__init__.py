"""The bottom layer of innreg: field maths (warp, compose, integrate, invert, resize, the affine-to-field
conversion, filters, Jacobian), the 2D/3D check and every enum.

Nothing here imports anything else from innreg; ``nn``, ``losses``, ``data`` and ``metrics`` sit on it.
The displacement-field convention is stated once, in :mod:`innreg.core.warp`.
"""

from innreg.core.affine import affine_ddf, invert_affine
from innreg.core.dims import check_dim
from innreg.core.enums import (
    FineUpdate,
    InterpMode,
    NMINormalization,
    PaddingMode,
    RefineInit,
    RegInput,
    RegLossKind,
    SubnetKind,
    TranslatorKind,
)
from innreg.core.filters import gaussian_smooth, spatial_gradient
from innreg.core.jacobian import jacobian_determinant
from innreg.core.warp import (
    compose,
    identity_grid,
    integrate_velocity,
    invert_field,
    resize_field,
    sample_on_grid,
    similarity_weight,
    warp,
)

__all__ = [
    "FineUpdate",
    "InterpMode",
    "NMINormalization",
    "PaddingMode",
    "RefineInit",
    "RegInput",
    "RegLossKind",
    "SubnetKind",
    "TranslatorKind",
    "affine_ddf",
    "check_dim",
    "compose",
    "gaussian_smooth",
    "identity_grid",
    "integrate_velocity",
    "invert_affine",
    "invert_field",
    "jacobian_determinant",
    "resize_field",
    "sample_on_grid",
    "similarity_weight",
    "spatial_gradient",
    "warp",
]
