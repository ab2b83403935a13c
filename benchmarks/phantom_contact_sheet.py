"""Regenerate docs/phantom_contact_sheet.png: whole-head phantom pairs in every contrast and orientation.

Run from the repository root: ``python benchmarks/phantom_contact_sheet.py``.
"""

from pathlib import Path

from innreg.data.phantom import make_phantom_pair, save_contact_sheet

# (moving, fixed, dim, size, axis): every contrast appears, in the three orientations and in 3D.
PAIRS = [
    ("pd", "t1", 2, (224, 192), "axial"),
    ("t2", "ct", 2, (224, 192), "axial"),
    ("flair", "t1", 2, (224, 192), "coronal"),
    ("t1", "t2", 2, (224, 192), "sagittal"),
    ("ct", "pd", 3, (64, 72, 64), "axial"),
]

if __name__ == "__main__":
    pairs = [make_phantom_pair(m, f, dim, size, rng=seed, axis=axis) for seed, (m, f, dim, size, axis) in enumerate(PAIRS)]
    out = save_contact_sheet(pairs, Path(__file__).resolve().parents[1] / "docs" / "phantom_contact_sheet.png")
    print(out)
