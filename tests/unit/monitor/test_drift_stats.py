"""PSI, the two-sample KS test (samples and histograms) and the two-proportion test, numpy only."""

from __future__ import annotations

import math

import numpy as np
import pytest
from edgeinspect.core.drift import (
    compare_histograms,
    compare_rates,
    kolmogorov_p,
    ks_histograms,
    ks_samples,
    proportion_test,
    psi,
    psi_groups,
)


def test_kolmogorov_p_matches_the_textbook_critical_values() -> None:
    # Q_KS(1.358) = 0.05 and Q_KS(1.628) = 0.01 (large-sample two-sided critical values)
    assert kolmogorov_p(1.358 / math.sqrt(1e8), 1e8) == pytest.approx(0.05, abs=1e-3)
    assert kolmogorov_p(1.628 / math.sqrt(1e8), 1e8) == pytest.approx(0.01, abs=1e-3)
    assert kolmogorov_p(0.0, 100) == 1.0


def test_ks_samples_of_one_distribution_is_not_significant_and_of_a_shift_is() -> None:
    rng = np.random.default_rng(1)
    a, b = rng.normal(0, 1, 400), rng.normal(0, 1, 300)
    gap, p = ks_samples(a, b)
    assert 0 < gap < 0.15 and p > 0.05
    gap, p = ks_samples(a, rng.normal(0.8, 1, 300))
    assert gap > 0.25 and p < 1e-6


def test_ks_samples_exact_gap_on_disjoint_samples() -> None:
    gap, p = ks_samples([1, 2, 3], [10, 11, 12, 13])
    assert gap == 1.0 and p < 0.1


def test_binned_ks_never_exceeds_the_raw_samples_gap() -> None:
    rng = np.random.default_rng(2)
    a, b = rng.normal(100, 10, 500), rng.normal(104, 10, 500)
    edges = np.linspace(0, 256, 65)
    raw_gap, _ = ks_samples(a, b)
    binned_gap, binned_p = ks_histograms(np.histogram(a, edges)[0], np.histogram(b, edges)[0])
    assert binned_gap <= raw_gap + 1e-12 and binned_gap > 0.5 * raw_gap and binned_p < 0.01


def test_psi_is_near_zero_for_the_same_distribution_and_large_for_a_shift() -> None:
    rng = np.random.default_rng(3)
    edges = np.linspace(0, 256, 65)
    base = np.histogram(rng.normal(120, 15, 2000), edges)[0]
    same = np.histogram(rng.normal(120, 15, 400), edges)[0]
    shifted = np.histogram(rng.normal(85, 15, 400), edges)[0]
    assert psi(base, same) < 0.05
    assert psi(base, shifted) > 1.0


def test_psi_groups_hold_about_a_tenth_of_the_baseline_each_and_are_consecutive() -> None:
    counts = np.array([0, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 0, 0])
    group = psi_groups(counts)
    assert list(group) == sorted(group) and group.max() == 9
    assert np.bincount(group, weights=counts).tolist() == [10.0] * 10


def test_psi_of_identical_counts_is_zero_and_mismatched_bins_are_refused() -> None:
    assert psi([5, 5, 5], [5, 5, 5]) == pytest.approx(0.0)
    with pytest.raises(ValueError, match="different bins"):
        psi([1, 2], [1, 2, 3])
    with pytest.raises(ValueError, match="non-negative"):
        psi([1, -2], [1, 2])


def test_proportion_test_matches_a_hand_computation() -> None:
    z, p = proportion_test(30, 100, 50, 100)
    assert z == pytest.approx(0.2 / math.sqrt(0.4 * 0.6 * 0.02))
    assert p == pytest.approx(0.00389, abs=2e-4)
    assert proportion_test(0, 0, 3, 10) == (0.0, 1.0)
    assert proportion_test(0, 50, 0, 50)[1] == 1.0


def test_drift_needs_both_a_large_psi_and_a_small_p_value() -> None:
    rng = np.random.default_rng(4)
    edges = np.linspace(0, 1, 51)
    base = np.histogram(rng.beta(2, 5, 3000), edges)[0]
    tiny_window = np.histogram(rng.beta(2, 5, 12), edges)[0]  # noisy PSI, but no evidence
    moved = np.histogram(rng.beta(5, 2, 300), edges)[0]
    assert not compare_histograms(base, tiny_window).drifted(0.2, 0.01)
    assert compare_histograms(base, moved).drifted(0.2, 0.01)
    rate = compare_rates(30, 300, 90, 300)
    assert rate.statistic == pytest.approx(0.2) and rate.drifted(0.2, 0.01)
    assert not compare_rates(30, 300, 33, 300).drifted(0.2, 0.01)
