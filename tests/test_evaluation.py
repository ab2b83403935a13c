import math

import numpy as np
import pytest

from innreg.evaluation import endpoint_error_mm, overlap_metrics


def test_endpoint_error_uses_spacing_and_mask():
    est = np.zeros((2, 4, 5))
    true = np.zeros((2, 4, 5))
    true[0] = 1.0  # one voxel along axis 0 everywhere
    true[1, :2] = 1.0  # plus one voxel along axis 1 in the first two rows
    mask = np.zeros((4, 5))
    mask[2:] = 1
    # spacing (2, 3): errors are 2 mm where only axis 0 is off, sqrt(4 + 9) mm elsewhere
    assert endpoint_error_mm(est, true, (2.0, 3.0), mask) == pytest.approx(2.0)
    expected = (2 * 5 * math.sqrt(13) + 2 * 5 * 2.0) / 20
    assert endpoint_error_mm(est, true, (2.0, 3.0), None) == pytest.approx(expected)


def test_overlap_metrics_only_scores_labels_present_in_fixed():
    fixed = np.zeros((10, 10), int)
    fixed[2:6, 2:6] = 1
    fixed[6:9, 6:9] = 2
    warped = fixed.copy()
    warped[6:9, 6:9] = 0
    warped[0, 0] = 3  # a label the fixed map lacks is ignored
    row = overlap_metrics(warped, fixed, (1.0, 1.0)).to_row()
    assert row["dice_1"] == 1.0 and row["dice_2"] == 0.0 and "dice_3" not in row
    assert row["dice_mean"] == 0.5
    # The lost label scores the grid's diagonal (9 * sqrt(2) mm), so it counts against the mean.
    assert row["hd95_1"] == 0.0 and row["hd95_2"] == pytest.approx(9 * math.sqrt(2))
    assert row["hd95_mean"] == pytest.approx(4.5 * math.sqrt(2))
