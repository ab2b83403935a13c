"""The spatial dimensionality check shared by every layer: innreg handles 2D and 3D from one code path."""

from __future__ import annotations


def check_dim(dim: int) -> int:
    """Return ``dim`` if it is 2 or 3, else raise a ``ValueError``."""
    if dim not in (2, 3):
        raise ValueError(f"dim must be 2 or 3, got {dim!r}")
    return dim
