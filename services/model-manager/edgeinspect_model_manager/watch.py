"""Probation after a swap: watch the new primary's agent stats (and re-run its smoke test) for a window.

The counters are the agent's own per-version ``GetModelStats`` (every request the alias served since
the version was loaded), taken relative to the moment of the swap, minus the smoke-test calls this
watch made itself. The verdict is :func:`policy.breach`; a breach ends the watch at once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from edgeinspect.core.agent_client import AgentClient, ModelStats
from edgeinspect.core.errors import AgentError, EdgeInspectError
from edgeinspect.core.observability import get_logger

from edgeinspect_model_manager.errors import JobInterrupted
from edgeinspect_model_manager.policy import Limits, Observation, breach

log = get_logger(__name__)


@dataclass(frozen=True)
class WatchPlan:
    name: str
    version: str
    window_s: float
    interval_s: float
    limits: Limits


def _stats(agent: AgentClient, name: str, version: str) -> ModelStats | None:
    for stats in agent.stats(name):
        if stats.version == version:
            return stats
    return None


def watch(
    agent: AgentClient, plan: WatchPlan, smoke: Callable[[], None] | None, stop: threading.Event
) -> str | None:
    """The reason to roll back, or None when the window passed cleanly. ``JobInterrupted`` on stop."""
    try:
        baseline = _stats(agent, plan.name, plan.version)
    except AgentError:
        baseline = None
    base_requests = baseline.requests if baseline else 0
    base_errors = baseline.errors if baseline else 0
    smoke_calls = 0
    deadline = time.monotonic() + plan.window_s
    while True:
        remaining = deadline - time.monotonic()
        if stop.wait(max(0.0, min(plan.interval_s, remaining))):
            raise JobInterrupted("stopping during the rollback watch; it starts again after the restart")
        if smoke is not None:
            smoke_calls += 1
            try:
                smoke()
            except EdgeInspectError as exc:
                return f"smoke test re-run failed: {exc.message}"
        try:
            now = _stats(agent, plan.name, plan.version)
        except AgentError as exc:
            log.warning("watch_stats_unavailable", model=plan.name, version=plan.version, error=str(exc))
            now = None
        if now is None:
            reason = "the agent no longer has the new version loaded" if _answers(agent) else None
            if reason:
                return reason
        else:
            seen = Observation(
                requests=max(0, now.requests - base_requests - smoke_calls),
                errors=max(0, now.errors - base_errors),
                p99_ms=now.p99_ms,
            )
            verdict = breach(seen, plan.limits)
            if verdict is not None:
                return verdict
            log.info(
                "watch_tick",
                model=plan.name,
                version=plan.version,
                requests=seen.requests,
                errors=seen.errors,
                p99_ms=round(seen.p99_ms, 2),
            )
        if time.monotonic() >= deadline:
            return None


def _answers(agent: AgentClient) -> bool:
    try:
        agent.health(timeout_s=2.0)
    except AgentError:
        return False
    return True
