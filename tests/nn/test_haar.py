"""Haar-wavelet mixing of squeezed cells (innreg.nn.haar)."""

from __future__ import annotations

import pytest
import torch

from innreg.nn.coupling import squeeze
from innreg.nn.haar import haar_matrix, haar_mix


@pytest.mark.parametrize("dim", [2, 3])
def test_matrix_is_orthonormal_and_its_own_inverse(dim):
    matrix = haar_matrix(dim, torch.device("cpu"), torch.float64)
    torch.testing.assert_close(matrix @ matrix.T, torch.eye(2**dim, dtype=torch.float64))
    torch.testing.assert_close(matrix @ matrix, torch.eye(2**dim, dtype=torch.float64))


def test_bands_of_a_2d_cell_by_hand():
    # Cell [[a, b], [c, d]] = [[1, 2], [3, 5]]: low-pass (a+b+c+d)/2, details (a-b+c-d)/2,
    # (a+b-c-d)/2 and (a-b-c+d)/2 (rows of kron(h, h) / 2 on the row-major offsets a, b, c, d).
    image = torch.tensor([[[[1.0, 2.0], [3.0, 5.0]]]])
    bands = haar_mix(squeeze(image), 2)[0, :, 0, 0]
    torch.testing.assert_close(bands, torch.tensor([5.5, -1.5, -2.5, 0.5]))


def test_cells_with_padding_are_left_alone():
    z = torch.randn(1, 4, 3, 3)
    full = torch.ones(1, 1, 3, 3, dtype=torch.bool)
    full[..., -1] = False
    mixed = haar_mix(z, 2, full)
    torch.testing.assert_close(mixed[..., -1], z[..., -1])
    torch.testing.assert_close(haar_mix(mixed, 2, full), z)
