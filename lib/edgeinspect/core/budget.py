"""A stream's retention budget, on its own so that settings can name it without importing Redis.

Every service's settings carry the budgets (``EI_FRAMES_MAX_BYTES`` ...); the cloud side (the fleet
service, the CLI) reads the same settings but never touches a stream, and its image has no Redis client.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Budget:
    """How much of one stream Redis keeps: ``max_bytes`` (approximate) and ``max_age_s`` (0: no bound)."""

    max_bytes: int
    max_age_s: float
