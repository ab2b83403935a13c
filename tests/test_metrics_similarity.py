import math

import numpy as np
import pytest
import torch

from innreg.metrics import ncc, ssim


def test_ncc_hand_cases():
    a = np.array([[1.0, 2.0], [3.0, 4.0]])
    assert ncc(a, a) == pytest.approx(1.0)
    assert ncc(a, 3 * a + 1) == pytest.approx(1.0)  # invariant to gain and offset
    assert ncc(a, -a) == pytest.approx(-1.0)
    # x = (-1.5, -0.5, 0.5, 1.5), y = (-1.5, 0.5, -0.5, 1.5): sum xy = 4, sum x^2 = sum y^2 = 5
    assert ncc(a, np.array([[1.0, 3.0], [2.0, 4.0]])) == pytest.approx(0.8)
    assert ncc(torch.from_numpy(a), torch.from_numpy(a)) == pytest.approx(1.0)


def test_ncc_uses_only_the_mask():
    a = np.array([1.0, 2.0, 3.0, 100.0])
    b = np.array([2.0, 4.0, 6.0, -50.0])
    mask = np.array([True, True, True, False])
    assert ncc(a, b, mask) == pytest.approx(1.0)
    assert ncc(a, b) < 0
    assert math.isnan(ncc(a, b, np.zeros(4, bool)))
    assert math.isnan(ncc(np.ones(4), b))  # constant image: undefined


def test_ssim_identical_and_constant_images():
    rng = np.random.default_rng(0)
    image = rng.uniform(size=(24, 20))
    assert ssim(image, image) == pytest.approx(1.0)
    volume = rng.uniform(size=(10, 12, 8))
    assert ssim(volume, volume) == pytest.approx(1.0)
    # Constant images: variances and covariance vanish, SSIM = (2 m1 m2 + C1) / (m1^2 + m2^2 + C1).
    c1 = 0.01**2
    expected = (2 * 0.2 * 0.6 + c1) / (0.2**2 + 0.6**2 + c1)
    assert ssim(np.full((16, 16), 0.2), np.full((16, 16), 0.6)) == pytest.approx(expected)


def test_ssim_drops_with_noise_and_respects_the_mask():
    rng = np.random.default_rng(1)
    image = np.zeros((32, 32))
    image[8:24, 8:24] = 1.0
    noisy = image + 0.3 * rng.standard_normal(image.shape)
    assert ssim(image, noisy) < 0.5
    clean_half = noisy.copy()
    clean_half[:, 16:] = image[:, 16:]
    left, right = np.zeros_like(image, bool), np.zeros_like(image, bool)
    left[:, :12], right[:, 21:] = True, True  # the window reaches 5 px
    assert ssim(image, clean_half, right) == pytest.approx(1.0, abs=1e-6)
    assert ssim(image, clean_half, left) < 0.5
