import math

import numpy as np
import pytest

from innreg.paired import paired_difference


def test_a_constant_difference_has_a_point_interval_and_the_exact_wilcoxon_p():
    a = [0.8, 0.7, 0.9, 0.6, 0.75]
    d = paired_difference(a, [v - 0.25 for v in a])  # exact in binary: a constant 0.25
    assert (d.n, d.mean, d.low, d.high, d.higher, d.lower) == (5, 0.25, 0.25, 0.25, 5, 0)
    # Five positive differences: the exact two-sided signed-rank p is 2 / 2**5.
    assert d.p_value == pytest.approx(2 / 32)


def test_symmetric_differences_are_no_difference():
    d = paired_difference([1.0, 0.0, 2.0, 0.0], [0.0, 1.0, 0.0, 2.0])  # differences 1, -1, 2, -2
    assert d.mean == 0.0 and d.higher == 2 and d.lower == 2
    assert d.p_value == pytest.approx(1.0)
    assert d.low < 0.0 < d.high


def test_interval_brackets_the_mean_within_the_range_of_differences_and_is_seeded():
    rng = np.random.default_rng(3)
    a, b = rng.random(12), rng.random(12)
    d = paired_difference(a, b)
    diffs = a - b
    assert diffs.min() <= d.low <= d.mean <= d.high <= diffs.max()
    assert d.mean == pytest.approx(diffs.mean())
    assert paired_difference(a, b) == d


def test_pairs_with_a_nan_are_left_out_and_bad_input_is_refused():
    d = paired_difference([1.0, math.nan, 3.0, 4.0], [0.5, 1.0, 2.5, 3.0])
    assert d.n == 3 and d.mean == pytest.approx((0.5 + 0.5 + 1.0) / 3)
    with pytest.raises(ValueError, match="equal-length"):
        paired_difference([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="at least two"):
        paired_difference([1.0, math.nan], [0.0, 0.0])


def test_describe_reads_as_one_line():
    text = paired_difference([0.9, 0.8, 0.85], [0.88, 0.79, 0.8]).describe()
    assert text.startswith("+0.027 (95% CI ") and "Wilcoxon p = " in text
    assert "higher on 3 and lower on 0 of 3 pairs" in text


def test_paired_by_key_pairs_the_shared_keys_in_the_first_ones_order():
    from innreg.paired import paired_by_key

    a = {"p1": 0.9, "p2": 0.8, "p3": 0.7, "only_a": 0.0}
    b = {"p3": 0.6, "p1": 0.85, "p2": 0.75, "only_b": 1.0}
    d = paired_by_key(a, b)
    assert d.n == 3 and d.mean == pytest.approx((0.05 + 0.05 + 0.1) / 3)
    assert d.mean_a == pytest.approx(0.8) and d.mean_b == pytest.approx(0.7333333)
    with pytest.raises(ValueError, match="got 1"):
        paired_by_key({"p1": 0.9}, b)


def test_an_infinite_value_is_refused_not_averaged():
    with pytest.raises(ValueError, match="infinite"):
        paired_difference([0.9, math.inf, 0.7], [0.8, 0.7, 0.6])
    with pytest.raises(ValueError, match="infinite"):
        paired_difference([0.9, 0.8], [0.8, -math.inf])
