"""Threshold baselines for the synthetic data: what a cut on raw pixel statistics achieves.

``TRIVIAL`` are the thresholds the generator must defeat outright (brightest or darkest pixel, global
contrast, dynamic range: they score near chance). The percentile scores look past single pixels at
the darkest/brightest 0.1%; they are weak, not useless, and reported beside them.
"""

from __future__ import annotations

import numpy as np
from edgeinspect_cloud.evaluation.metrics import average_precision

TRIVIAL = ("max", "min", "contrast", "range")


def trivial_scores(image: np.ndarray) -> dict[str, float]:
    """Scores a threshold on raw pixels would use: extremes, contrast, dynamic range, percentiles."""
    grey = image.astype(np.float32).mean(axis=2)
    median = float(np.median(grey))
    return {
        "max": float(grey.max()),
        "min": -float(grey.min()),
        "contrast": float(grey.std()),
        "range": float(np.ptp(grey)),
        "brightest_vs_median": float(np.percentile(grey, 99.9)) - median,
        "darkest_vs_median": median - float(np.percentile(grey, 0.1)),
    }


def trivial_baseline_aps(images: list[np.ndarray], labels: np.ndarray) -> dict[str, float]:
    """AP of each score, taking the better of the two signs (the most generous reading)."""
    table = [trivial_scores(image) for image in images]
    aps = {}
    for key in table[0]:
        values = np.array([row[key] for row in table])
        aps[key] = max(average_precision(labels, values), average_precision(labels, -values))
    return aps
