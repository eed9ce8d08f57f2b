"""A fine-tune's shipped weights: part of the way from the parent's weights to the fine-tuned ones.

Weight-space ensembling (WiSE-FT, Wortsman et al. 2022): a network fine-tuned from a parent stays in
the parent's basin, so every point on the straight line between the two is a working network, and
points in between can be better than either end. Measured on four unseen surfaces from two
parents, 30 labelled frames each (docs/fine-tuning.md, "Blending with the parent"): keeping half the
change (``share`` 0.5) learnt about as much of the new line as the plain fine-tune (better on 5 of
8, 0.001 AP on average) and lost the earlier lines far less (worst classic-line drop 0.009 and
0.003, plain 0.014 and 0.014), so 6 of 8 passed the gate's earlier-line check (0.005 AP) against 3
of 8. ``share`` 1 is the plain fine-tune, 0 the parent.

Batch-norm running statistics are interpolated like the weights; integer entries (a counter of
batches seen) come from the fine-tune.
"""

from __future__ import annotations

from typing import Any

from edgeinspect_cloud.errors import TrainingError


def check_share(share: float) -> None:
    """Refuse a share outside ``(0, 1]``: 0 would ship the parent unchanged under a new version."""
    if not 0.0 < share <= 1.0:
        raise TrainingError(
            f"the fine-tune blend must be in (0, 1], got {share:g}",
            hint="0.5 keeps half of what the fine-tune changed (the default); 1 ships the plain fine-tune",
        )


def _floating(value: Any) -> bool:
    """Whether an entry is a real-valued array (torch tensor or numpy array), not a counter."""
    if hasattr(value, "is_floating_point"):
        return bool(value.is_floating_point())
    return getattr(getattr(value, "dtype", None), "kind", "") == "f"


def blended(parent: Any, tuned: Any, share: float) -> Any:
    """``parent + share x (tuned - parent)`` for one real-valued entry; ``tuned`` for any other."""
    if not _floating(tuned):
        return tuned
    return parent + share * (tuned - parent)
