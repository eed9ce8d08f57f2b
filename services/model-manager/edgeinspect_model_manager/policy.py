"""Pure decisions, kept apart so they are unit-tested without an agent, a broker or a disk.

- which alias a model serves behind when the job names none (by the manifest's task);
- which versions to delete to keep at most N on disk (never one an alias uses; oldest *version* first,
  compared as versions: "10" is newer than "9");
- whether the sample's ``new_model`` may move a model forward;
- whether a new version on probation breached its limits (error rate, p99), and so is rolled back.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from edgeinspect.core.package import parse_version

DEFAULT_ALIASES = {
    "classification": "defect-cls",
    "segmentation": "defect-seg",
    "multitask": "defect-mt",
    "anomaly": "defect-seg",
}


def default_alias(task: str) -> str:
    """The alias the worker reads for a task: ``defect-cls``, ``defect-seg`` or ``defect-mt``."""
    try:
        return DEFAULT_ALIASES[task]
    except KeyError:
        raise ValueError(f"no default alias for task {task!r}; name one in the job's 'alias'") from None


def is_newer(candidate: str, current: str) -> bool:
    """Whether ``candidate`` is a later version than ``current`` ("1.10" > "1.9", "10" > "9")."""
    return parse_version(candidate) > parse_version(current)


def versions_to_delete(installed: Iterable[str], protected: Iterable[str], keep: int) -> list[str]:
    """Versions to delete so at most ``keep`` remain, oldest first; ``protected`` ones are never chosen.

    When more versions are protected than ``keep`` allows, only unprotected ones go (the count may then
    stay above ``keep``: a version an alias uses is never deleted).
    """
    if keep < 1:
        raise ValueError("keep must be at least 1")
    everything = sorted(set(installed), key=parse_version)
    guarded = set(protected)
    excess = len(everything) - keep
    if excess <= 0:
        return []
    candidates = [v for v in everything if v not in guarded]
    return candidates[:excess]


@dataclass(frozen=True)
class Limits:
    """When a version on probation is judged bad (see the rollback settings)."""

    max_error_rate: float
    max_p99_ms: float  # 0: not checked
    min_requests: int


@dataclass(frozen=True)
class Observation:
    """What the watch saw of the new version since the swap (smoke-test calls taken out)."""

    requests: int
    errors: int
    p99_ms: float


def breach(seen: Observation, limits: Limits) -> str | None:
    """The reason to roll back, or None while the version behaves (or too few requests to judge)."""
    if seen.requests < limits.min_requests:
        return None
    rate = seen.errors / seen.requests
    if rate > limits.max_error_rate:
        return (
            f"error rate {rate:.2f} ({seen.errors} of {seen.requests} requests) "
            f"above the limit {limits.max_error_rate:.2f}"
        )
    if limits.max_p99_ms > 0 and seen.p99_ms > limits.max_p99_ms:
        return f"p99 latency {seen.p99_ms:.1f} ms above the limit {limits.max_p99_ms:.1f} ms"
    return None
