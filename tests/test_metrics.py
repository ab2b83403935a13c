import itertools
import math

import numpy as np
import pytest
import torch

from innreg.metrics import dice_per_label, hd95_per_label, mean_ignore_nan, neg_jacobian_fraction


def square(shape, start, stop, label=1) -> np.ndarray:
    out = np.zeros(shape, dtype=np.int64)
    out[start[0] : stop[0], start[1] : stop[1]] = label
    return out


def brute_force_hd95(a: np.ndarray, b: np.ndarray, spacing) -> float:
    """Reference without erosion or distance transforms: explicit neighbours and pairwise distances."""

    def surface_points(mask):
        padded = np.pad(mask, 1)
        points = []
        for idx in zip(*np.nonzero(mask)):
            neighbours = []
            for axis, step in itertools.product(range(mask.ndim), (-1, 1)):
                n = [i + 1 for i in idx]
                n[axis] += step
                neighbours.append(padded[tuple(n)])
            if not all(neighbours):
                points.append(idx)
        return np.asarray(points, dtype=float) * np.asarray(spacing)

    pa, pb = surface_points(a), surface_points(b)
    dist = np.linalg.norm(pa[:, None] - pb[None], axis=-1)
    return max(np.percentile(dist.min(axis=1), 95), np.percentile(dist.min(axis=0), 95))


def test_dice_of_offset_squares_and_identity():
    a = square((12, 12), (2, 2), (7, 7))  # 5x5
    b = square((12, 12), (2, 4), (7, 9))  # shifted 2 along axis 1: overlap 5x3
    assert dice_per_label(a, b) == {1: pytest.approx(2 * 15 / 50)}
    assert dice_per_label(b, b) == {1: 1.0}


def test_dice_labels_default_and_missing():
    target = square((10, 10), (0, 0), (4, 4), label=2) + square((10, 10), (5, 5), (8, 8), label=5)
    pred = square((10, 10), (0, 0), (4, 4), label=2) + square((10, 10), (8, 8), (10, 10), label=7)
    assert dice_per_label(pred, target) == {2: 1.0, 5: 0.0}  # label 7 is only in pred: not scored
    scores = dice_per_label(torch.from_numpy(pred), torch.from_numpy(target), labels=[2, 3])
    assert scores[2] == 1.0 and math.isnan(scores[3])  # 3 is in neither map: undefined


def test_hd95_identical_masks_is_zero():
    a = square((10, 12), (2, 3), (8, 9))
    assert hd95_per_label(a, a, spacing=(1.5, 0.7)) == {1: 0.0}


def test_hd95_concentric_squares_isotropic_hand_computed():
    outer = square((14, 14), (2, 2), (12, 12))  # surface ring on rows/cols 2 and 11
    inner = square((14, 14), (4, 4), (10, 10))  # surface ring on rows/cols 4 and 9
    # inner -> outer: every inner surface voxel is 2 from the outer ring. outer -> inner: 24 voxels at 2,
    # 8 at sqrt(5), the 4 corners at sqrt(8); the 95th percentile of these 36 values is sqrt(8).
    assert hd95_per_label(inner, outer, spacing=(1, 1))[1] == pytest.approx(math.sqrt(8))
    assert hd95_per_label(outer, inner, spacing=(3, 3))[1] == pytest.approx(3 * math.sqrt(8))


def test_hd95_concentric_squares_anisotropic_hand_computed():
    outer = square((14, 14), (2, 2), (12, 12))
    inner = square((14, 14), (4, 4), (10, 10))
    # Spacing (2, 1): axis-0 gaps count double. inner -> outer: 12 at 2, 4 at 3, 4 at 4 -> p95 = 4.
    # outer -> inner: 12 at 2, 4 at sqrt(8), 12 at 4, 4 at sqrt(17), 4 corners at sqrt(20) -> p95 = sqrt(20).
    assert hd95_per_label(inner, outer, spacing=(2, 1))[1] == pytest.approx(math.sqrt(20))
    assert brute_force_hd95(inner == 1, outer == 1, (2, 1)) == pytest.approx(math.sqrt(20))


def test_hd95_single_voxels_along_each_axis():
    a = square((10, 10), (5, 5), (6, 6))
    assert hd95_per_label(a, square((10, 10), (8, 5), (9, 6)), spacing=(2, 1))[1] == pytest.approx(6.0)
    assert hd95_per_label(a, square((10, 10), (5, 8), (6, 9)), spacing=(2, 1))[1] == pytest.approx(3.0)


def test_hd95_matches_brute_force_on_random_3d_blobs():
    rng = np.random.default_rng(0)
    grid = np.indices((9, 10, 7)).astype(float)
    spacing = (1.2, 0.8, 2.5)

    def random_labels():
        # A ball of label 1 with a random, ragged subset relabelled 3.
        centre = rng.uniform(3, 6, size=(3, 1, 1, 1))
        ball = ((grid - centre) ** 2).sum(0) < rng.uniform(5, 9)
        return np.where(ball, np.where(rng.random(ball.shape) < 0.4, 3, 1), 0)

    for _ in range(3):
        a, b = random_labels(), random_labels()
        scores = hd95_per_label(a, b, spacing)
        assert sorted(scores) == [1, 3]
        for label, value in scores.items():
            assert value == pytest.approx(brute_force_hd95(a == label, b == label, spacing))


def test_hd95_of_a_lost_label_is_the_grid_diagonal_and_nan_only_when_absent_from_both():
    target = square((8, 5), (1, 1), (4, 4))
    lost = hd95_per_label(np.zeros_like(target), target, spacing=(2, 1))
    assert list(lost) == [1] and lost[1] == pytest.approx(math.sqrt(14**2 + 4**2))
    assert hd95_per_label(target, np.zeros_like(target), spacing=(2, 1), labels=[1])[1] == lost[1]
    assert math.isnan(hd95_per_label(target, target, spacing=(2, 1), labels=[2])[2])
    with pytest.raises(ValueError, match="spacing"):
        hd95_per_label(target, target, spacing=(1, 1, 1))


def test_neg_jacobian_fraction_of_a_known_fold():
    shape, folded_cols = (6, 10), 4
    ddf = np.zeros((2, *shape))
    # u_0 = -2 x_0 on the first 4 columns: det = 1 + du_0/dx_0 = -1 there, 1 elsewhere.
    ddf[0, :, :folded_cols] = -2 * np.arange(shape[0])[:, None]
    assert neg_jacobian_fraction(ddf) == pytest.approx(folded_cols / shape[1])
    # det exactly 0 counts as folded; torch input with a batch axis works too.
    ddf[0, :, :folded_cols] = -1 * np.arange(shape[0])[:, None]
    assert neg_jacobian_fraction(torch.from_numpy(ddf).float()[None]) == pytest.approx(folded_cols / shape[1])
    assert neg_jacobian_fraction(torch.zeros(3, 4, 5, 6)) == 0.0


def test_neg_jacobian_fraction_of_a_known_3d_fold():
    ddf = np.zeros((3, 4, 5, 6))
    # u_1 = -2 x_1 on the first of 4 slices along axis 0: det = 1 + du_1/dx_1 = -1 there, 1 elsewhere.
    ddf[1, :1] = -2 * np.arange(5)[None, :, None]
    assert neg_jacobian_fraction(ddf) == pytest.approx(1 / 4)


def test_neg_jacobian_fraction_rejects_batches_and_bad_shapes():
    with pytest.raises(ValueError):
        neg_jacobian_fraction(np.zeros((2, 2, 5, 5)))
    with pytest.raises(ValueError):
        neg_jacobian_fraction(np.zeros((4, 5, 5)))


def test_mean_ignore_nan():
    assert mean_ignore_nan([1.0, float("nan"), 3.0]) == 2.0
    assert mean_ignore_nan({1: 0.5, 2: float("nan")}) == 0.5
    assert math.isnan(mean_ignore_nan([float("nan")]))
    assert math.isnan(mean_ignore_nan([]))
