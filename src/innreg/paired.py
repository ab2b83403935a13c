"""Two methods over the same pairs: the mean paired difference, its bootstrap confidence interval and
the Wilcoxon signed-rank test (both from scipy).

Test sets here are small (6-12 pairs), so a mean difference of 0.02 Dice alone says little; the paired
interval and test say whether it stands out from the pair-to-pair spread.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class PairedDifference:
    """Statistics of ``a - b`` over pairs.

    Attributes:
        n: pairs compared.
        mean: mean of ``a - b``.
        mean_a, mean_b: the means of ``a`` and ``b`` over those pairs.
        low, high: bootstrap percentile interval of the mean at ``confidence``.
        confidence: the interval's level.
        p_value: two-sided Wilcoxon signed-rank p (zero differences dropped); 1.0 when all are zero.
        higher: pairs where ``a > b``.
        lower: pairs where ``a < b``.
    """

    n: int
    mean: float
    mean_a: float
    mean_b: float
    low: float
    high: float
    confidence: float
    p_value: float
    higher: int
    lower: int

    def describe(self, spec: str = "+.3f") -> str:
        """One line: the difference, its interval, the test and the pair count."""
        return (
            f"{self.mean:{spec}} ({self.confidence:.0%} CI {self.low:{spec}} to {self.high:{spec}}), "
            f"Wilcoxon p = {self.p_value:.2g}, higher on {self.higher} and lower on {self.lower} of {self.n} pairs"
        )


def paired_difference(
    a: Sequence[float], b: Sequence[float], confidence: float = 0.95, resamples: int = 10000, seed: int = 0
) -> PairedDifference:
    """Compare ``a`` and ``b``, one value per pair in the same order; pairs with a NaN (undefined) are left out.

    Raises:
        ValueError: on different lengths, an infinite value, or fewer than two pairs with both values.
    """
    from scipy import stats

    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.ndim != 1 or a.shape != b.shape:
        raise ValueError(f"paired values need two equal-length lists, got shapes {a.shape} and {b.shape}")
    if np.isinf(a).any() or np.isinf(b).any():  # its mean and interval would be inf and NaN
        raise ValueError("paired values must be finite (or NaN where undefined), got an infinite one")
    both = ~(np.isnan(a) | np.isnan(b))
    a, b = a[both], b[both]
    d = a - b
    if d.size < 2:
        raise ValueError(f"paired comparison needs at least two pairs with both values, got {d.size}")
    if np.all(d == d[0]):  # the bootstrap distribution is a point
        low = high = float(d[0])
    else:
        ci = stats.bootstrap(
            (d,), np.mean, confidence_level=confidence, n_resamples=resamples, method="percentile",
            random_state=np.random.default_rng(seed),
        ).confidence_interval  # fmt: skip
        low, high = float(ci.low), float(ci.high)
    p_value = 1.0 if np.all(d == 0) else float(stats.wilcoxon(d).pvalue)
    return PairedDifference(
        n=int(d.size), mean=float(d.mean()), mean_a=float(a.mean()), mean_b=float(b.mean()), low=low, high=high,
        confidence=confidence, p_value=p_value, higher=int((d > 0).sum()), lower=int((d < 0).sum()),
    )  # fmt: skip


def paired_by_key(a: Mapping[Hashable, float], b: Mapping[Hashable, float], **kwargs) -> PairedDifference:
    """:func:`paired_difference` over the keys ``a`` and ``b`` share, in ``a``'s order (e.g. two
    :func:`innreg.results.read_per_pair`, keyed by ``(moving, fixed)``); ``kwargs`` go to it."""
    keys = [k for k in a if k in b]
    return paired_difference([a[k] for k in keys], [b[k] for k in keys], **kwargs)
