"""How a job ended, as the job thread reports it to the cloud and to ``ei:events``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

Progress = Callable[[str, dict[str, str]], None]
"""Called with a stage name and extra statusDetails at the start of every stage of a job."""


@dataclass(frozen=True)
class Outcome:
    """A job's final status and why; ``details`` become the final update's ``statusDetails``."""

    status: Literal["SUCCEEDED", "FAILED"]
    reason: str = ""
    details: dict[str, str] = field(default_factory=dict)

    @classmethod
    def succeeded(cls, **details: str) -> Outcome:
        return cls("SUCCEEDED", "", {"stage": "done", **details})

    @classmethod
    def failed(cls, reason: str, **details: str) -> Outcome:
        return cls("FAILED", reason, details)
