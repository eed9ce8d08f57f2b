"""The records the model table hands out: alias entries, prediction calls and their outcomes."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from edgeinspect_inference.agent.loader import LoadedModel
from edgeinspect_inference.agent.shadow import ShadowOutcome

Role = Literal["primary", "shadow", ""]
Feeds = Mapping[str, np.ndarray]


@dataclass(frozen=True)
class AliasEntry:
    """An alias (``defect-cls``) pointing at a loaded version, with an optional shadow version."""

    alias: str
    model: LoadedModel
    shadow: LoadedModel | None = None
    updated_at_ns: int = field(default_factory=time.time_ns)


@dataclass(frozen=True)
class PredictOutcome:
    """Outputs of one prediction, which version produced them, and the model's own run time."""

    name: str
    version: str
    outputs: dict[str, np.ndarray]
    latency_ms: float
    role: Role
    shadow: ShadowOutcome | None = None


@dataclass(frozen=True)
class PredictCall:
    """One element of a batched prediction."""

    model: str
    inputs: Feeds
    frame_id: str = ""
