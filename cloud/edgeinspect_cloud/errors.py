"""Errors raised by the cloud tools (dataset, training, evaluation), rooted in the core hierarchy.

They subclass :class:`~edgeinspect.core.errors.EdgeInspectError`, so the CLI prints every one the same
way (message, then the hint saying what to do) and a pipeline step can catch them all at once.
"""

from __future__ import annotations

from edgeinspect.core.errors import EdgeInspectError


class DatasetError(EdgeInspectError):
    """A dataset folder is not in the expected layout, or one of its files is unusable."""


class TrainingError(EdgeInspectError):
    """Training cannot start or finish (bad settings, no usable data, a failed export)."""


class EvaluationError(EdgeInspectError):
    """A model cannot be evaluated (unreadable model or spec, outputs that break the model contract)."""
