"""A copy of a phantom test set with extra MR noise on its images (run by hand).

Usage:
    python benchmarks/noisy_copy.py SET_DIR OUT_DIR LEVEL SEED

Reads ``SET_DIR/test.csv`` (an ``innreg phantom`` manifest) and writes ``OUT_DIR/test.csv`` with the same
rows: the moving and fixed images get Rician noise, ``|x + n1 + i n2|`` with ``n1, n2`` Gaussian of s.d.
``LEVEL`` times the image's 99th percentile (magnitude MR images are Rician), headers kept; every other
file (labels, true field, ``moving_as_fixed``) is linked, not copied. For checking how the refinement's
settings and innreg's lead over its peers hold on noisier scans than the phantom's
(``benchmarks/RESULTS.md`` section 18).
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import nibabel as nib
import numpy as np

NOISY_COLUMNS = ("moving", "fixed")


def rician(image: np.ndarray, level: float, rng: np.random.Generator) -> np.ndarray:
    """``image`` with Rician noise of s.d. ``level`` times its 99th percentile, as float32."""
    sd = level * float(np.percentile(image, 99))
    real, imaginary = image + rng.normal(0.0, sd, image.shape), rng.normal(0.0, sd, image.shape)
    return np.hypot(real, imaginary).astype(np.float32)


def main(set_dir: str, out_dir: str, level: str, seed: str) -> None:
    source, out = Path(set_dir), Path(out_dir)
    rng = np.random.default_rng(int(seed))
    with open(source / "test.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    if not rows:
        sys.exit(f"{source / 'test.csv'}: no pairs")
    for row in rows:
        for column, relative in row.items():
            target = out / relative
            if target.exists() or target.is_symlink():
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            if column in NOISY_COLUMNS:
                image = nib.load(source / relative)
                noisy = rician(np.asarray(image.dataobj, dtype=np.float32), float(level), rng)
                nib.save(nib.Nifti1Image(noisy, image.affine, image.header), target)
            else:
                target.symlink_to((source / relative).resolve())
    with open(out / "test.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


if __name__ == "__main__":
    if len(sys.argv) != 5:
        sys.exit(__doc__)
    main(*sys.argv[1:])
