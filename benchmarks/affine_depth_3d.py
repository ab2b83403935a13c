"""How well the affine stage's network can learn 3D affine maps at a working grid, by encoder depth (run by hand).

Usage:
    python benchmarks/affine_depth_3d.py TRAIN.csv TEST.csv STEPS [SEED] [FACTOR]

A supervised probe, no registration loss: the fixed volumes of each manifest, downsampled by ``FACTOR``
(default 2, the 3D CPU defaults' ``model.input_factor``), are the moving images; each fixed image is the
volume warped by a random affine field of :func:`innreg.data.deformations.random_affine_field` (rotations
up to 10 degrees per axis, scalings up to 8 % per axis, shifts up to 3 voxels), and an
:class:`~innreg.nn.affine.AffineNet` is fitted for ``STEPS`` Adam steps (lr 1e-3, batches of 2) to that
field. Printed per encoder: the RMS field error on the test volumes (each under two fixed maps) against
the identity's. Encoders: the default's five stride-2 levels (a 48x64x32 grid
ends at 2x2x1 cells before the 4x4x4 pooling) and three (6x8x4). ``benchmarks/RESULTS.md`` section 11:
three levels learn faster here, yet trained inside the network they changed nothing.
"""

from __future__ import annotations

import sys
import time

import nibabel as nib
import numpy as np
import torch

from innreg.core.affine import affine_ddf
from innreg.core.filters import downsample
from innreg.data import normalize_percentile, read_manifest
from innreg.data.deformations import random_affine_field
from innreg.nn import warp
from innreg.nn.affine import AffineNet

ENCODERS = {"five levels (default)": {}, "three levels": {"channels": (16, 32, 32)}}


def _volumes(manifest: str, factor: int) -> torch.Tensor:
    images = [normalize_percentile(nib.load(record.fixed).get_fdata()) for record in read_manifest(manifest)]
    return torch.cat([downsample(torch.as_tensor(a, dtype=torch.float32)[None, None], factor) for a in images])


def _moved(volumes: torch.Tensor, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(moving, fixed, the field that aligns moving to fixed) for each volume."""
    shape = tuple(volumes.shape[2:])
    field = torch.stack([random_affine_field(shape, 10.0, (0.92, 1.08), 0.0, 3.0, rng) for _ in volumes])
    return volumes, warp(volumes, field), field


def main(argv: list[str]) -> None:
    train_csv, test_csv, steps = argv[0], argv[1], int(argv[2])
    seed = int(argv[3]) if len(argv) > 3 else 0
    factor = int(argv[4]) if len(argv) > 4 else 2
    torch.set_num_threads(1)
    train, test = _volumes(train_csv, factor), _volumes(test_csv, factor)
    shape = tuple(train.shape[2:])
    test_moving, test_fixed, test_truth = _moved(test.repeat(2, 1, 1, 1, 1), np.random.default_rng(1))
    identity = test_truth.pow(2).sum(1).mean().sqrt().item()
    print(f"working grid {'x'.join(map(str, shape))}, {len(train)} training / {len(test)} test volumes", flush=True)
    for name, kwargs in ENCODERS.items():
        torch.manual_seed(seed)
        rng = np.random.default_rng(seed)
        net = AffineNet(3, **kwargs)
        optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
        start = time.perf_counter()
        for _ in range(steps):
            moving, fixed, truth = _moved(train[torch.as_tensor(rng.integers(len(train), size=2))], rng)
            loss = (affine_ddf(*net(moving, fixed), shape) - truth).pow(2).sum(1).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            error = (affine_ddf(*net(test_moving, test_fixed), shape) - test_truth).pow(2).sum(1).mean().sqrt().item()
        print(f"{name}: RMS field error {error:.2f} voxels (identity {identity:.2f}), {time.perf_counter() - start:.0f} s", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
