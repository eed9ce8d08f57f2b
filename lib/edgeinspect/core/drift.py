"""Drift statistics over fixed-bin histograms and samples: PSI, two-sample KS, two-proportion test.

numpy and :mod:`math` only, so the edge image, the cloud monitor and the tests compute the very same
figures without scipy. Histograms passed here are count vectors over the *same* bin edges (the edges
of :mod:`edgeinspect.core.telemetry`, fixed per feature), which is what makes an edge window and a
training baseline comparable at all.

Why both PSI and a test: PSI measures *how much* a distribution moved (0.1 "some", 0.2 "significant"
by the usual credit-risk rule of thumb) but is noisy on small windows; a p-value says whether the move
is more than sampling noise but flags trivial moves on large windows. The monitor calls a feature
drifted only when both agree.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Counts = npt.ArrayLike
PSI_GROUPS = 10
"""PSI is computed over at most this many groups of fine bins holding equal baseline mass (deciles):
fine bins would make PSI mostly sampling noise on a window of a few hundred frames."""
PSI_PSEUDO_COUNT = 0.5
"""Added to every group's count before taking shares, so an empty group never divides by zero."""


@dataclass(frozen=True, slots=True)
class Comparison:
    """One feature, field against baseline: PSI, the test statistic and its p-value, and the sizes."""

    psi: float
    statistic: float
    p_value: float
    n_baseline: int
    n_field: int

    def drifted(self, psi_threshold: float, p_threshold: float) -> bool:
        """Drift means a large move (PSI) that is not sampling noise (p): both, not either."""
        return self.psi >= psi_threshold and self.p_value < p_threshold


def _counts(values: Counts) -> npt.NDArray[np.float64]:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1 or array.size == 0 or (array < 0).any() or not np.isfinite(array).all():
        raise ValueError("histogram counts must be a non-empty 1-D vector of finite non-negative numbers")
    return array


def psi_groups(baseline: Counts, groups: int = PSI_GROUPS) -> npt.NDArray[np.intp]:
    """The group of each fine bin: consecutive bins holding about ``1/groups`` of the baseline each.

    A bin belongs to the group its baseline mid-mass falls in, so the grouping depends on the
    baseline only (the field window can never move the goal posts).
    """
    base = _counts(baseline)
    total = base.sum()
    if total <= 0:
        return np.zeros(base.size, dtype=np.intp)
    cumulative = np.cumsum(base) / total
    mid = cumulative - base / total / 2.0
    # mid-masses never decrease, so groups are runs of consecutive bins; an empty bin joins its left run
    group: npt.NDArray[np.intp] = np.minimum((mid * groups).astype(np.intp), groups - 1)
    return group


def psi(baseline: Counts, field: Counts, groups: int = PSI_GROUPS) -> float:
    """Population stability index of ``field`` against ``baseline`` (same bins), over decile groups."""
    base, seen = _counts(baseline), _counts(field)
    if base.shape != seen.shape:
        raise ValueError(f"histograms have different bins: {base.size} vs {seen.size}")
    group = psi_groups(base, groups)
    count = int(group.max()) + 1
    b = np.bincount(group, weights=base, minlength=count) + PSI_PSEUDO_COUNT
    f = np.bincount(group, weights=seen, minlength=count) + PSI_PSEUDO_COUNT
    pb, pf = b / b.sum(), f / f.sum()
    return float(np.sum((pf - pb) * np.log(pf / pb)))


def psi_rate(k_baseline: int, n_baseline: int, k_field: int, n_field: int) -> float:
    """PSI of a yes/no share (a defect rate) as a two-bin histogram."""
    return psi([n_baseline - k_baseline, k_baseline], [n_field - k_field, k_field], groups=2)


def kolmogorov_p(statistic: float, n_effective: float) -> float:
    """Asymptotic p-value of a two-sample KS statistic (Stephens' small-sample correction)."""
    if n_effective <= 0 or statistic <= 0:
        return 1.0
    root = math.sqrt(n_effective)
    lam = (root + 0.12 + 0.11 / root) * statistic
    if lam < 0.2:
        return 1.0
    total = 0.0
    for j in range(1, 101):
        term = (-1) ** (j - 1) * math.exp(-2.0 * j * j * lam * lam)
        total += term
        if abs(term) < 1e-12:
            break
    return float(min(1.0, max(0.0, 2.0 * total)))


def ks_histograms(baseline: Counts, field: Counts) -> tuple[float, float]:
    """Two-sample KS on binned data: the largest CDF gap at the bin edges, and its p-value.

    Binning can only hide gaps, never create them, so this is conservative: a drift it reports is one
    the raw samples would show at least as strongly.
    """
    base, seen = _counts(baseline), _counts(field)
    if base.shape != seen.shape:
        raise ValueError(f"histograms have different bins: {base.size} vs {seen.size}")
    nb, nf = base.sum(), seen.sum()
    if nb <= 0 or nf <= 0:
        return 0.0, 1.0
    gap = float(np.max(np.abs(np.cumsum(base) / nb - np.cumsum(seen) / nf)))
    return gap, kolmogorov_p(gap, nb * nf / (nb + nf))


def ks_samples(baseline: npt.ArrayLike, field: npt.ArrayLike) -> tuple[float, float]:
    """Two-sample KS on raw samples (NaNs dropped): the largest gap of the empirical CDFs, p-value."""
    a = np.sort(np.asarray(baseline, dtype=np.float64).ravel())
    b = np.sort(np.asarray(field, dtype=np.float64).ravel())
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    if a.size == 0 or b.size == 0:
        return 0.0, 1.0
    points = np.concatenate([a, b])
    cdf_a = np.searchsorted(a, points, side="right") / a.size
    cdf_b = np.searchsorted(b, points, side="right") / b.size
    gap = float(np.max(np.abs(cdf_a - cdf_b)))
    return gap, kolmogorov_p(gap, a.size * b.size / (a.size + b.size))


def proportion_test(k_baseline: int, n_baseline: int, k_field: int, n_field: int) -> tuple[float, float]:
    """Two-sided two-proportion z-test: (z, p-value); (0, 1) when either side has no trials."""
    if n_baseline <= 0 or n_field <= 0:
        return 0.0, 1.0
    pooled = (k_baseline + k_field) / (n_baseline + n_field)
    spread = math.sqrt(pooled * (1.0 - pooled) * (1.0 / n_baseline + 1.0 / n_field))
    diff = k_field / n_field - k_baseline / n_baseline
    if spread == 0.0:
        return 0.0, 1.0 if diff == 0 else 0.0
    z = diff / spread
    return z, math.erfc(abs(z) / math.sqrt(2.0))


def compare_histograms(baseline: Counts, field: Counts) -> Comparison:
    """PSI and binned KS of one feature."""
    gap, p_value = ks_histograms(baseline, field)
    return Comparison(
        psi(baseline, field), gap, p_value, int(_counts(baseline).sum()), int(_counts(field).sum())
    )


def compare_rates(k_baseline: int, n_baseline: int, k_field: int, n_field: int) -> Comparison:
    """PSI and two-proportion z-test of a rate (statistic: field rate minus baseline rate)."""
    _, p_value = proportion_test(k_baseline, n_baseline, k_field, n_field)
    shift = (k_field / n_field if n_field else 0.0) - (k_baseline / n_baseline if n_baseline else 0.0)
    return Comparison(psi_rate(k_baseline, n_baseline, k_field, n_field), shift, p_value, n_baseline, n_field)
