"""The training-to-registry pipeline: named steps over one run folder, runnable together or alone.

``run_pipeline(PipelineOptions(...), steps)`` is what ``edgeinspect pipeline run`` calls; the run
folder's layout (:mod:`edgeinspect_cloud.pipeline.layout`) is the contract between steps.
"""

from edgeinspect_cloud.pipeline.layout import (
    ALL_TASKS,
    GROUPS,
    STEPS,
    TASKS,
    PipelineError,
    PipelineOptions,
    RunLayout,
)
from edgeinspect_cloud.pipeline.runner import run_pipeline

__all__ = [
    "ALL_TASKS",
    "GROUPS",
    "STEPS",
    "TASKS",
    "PipelineError",
    "PipelineOptions",
    "RunLayout",
    "run_pipeline",
]
