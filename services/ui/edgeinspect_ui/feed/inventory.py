"""The model table: what the edge agent has loaded, joined with aliases, latency and deployment jobs.

The UI talks to the agent only through ``edgeinspect.core.agent_client.AgentClient`` (its gRPC
stubs, no onnxruntime). An agent that is not configured or not reachable is a state the page shows
("no agent reachable"), never an error page.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Protocol

import grpc
from edgeinspect.core.errors import EdgeInspectError
from edgeinspect.core.observability import get_logger

from edgeinspect_ui.api.schemas import ModelRow, ModelsOut
from edgeinspect_ui.feed.jobs import JobBoard
from edgeinspect_ui.feed.views import SHA_PREFIX

log = get_logger(__name__)
AGENT_TIMEOUT_S = 3.0  # a stuck agent must not freeze the table for long


class AgentLike(Protocol):
    """The part of ``AgentClient`` the UI uses (versions, aliases and latency stats)."""

    def list_versions(self) -> Iterable[Any]: ...
    def list_aliases(self) -> Iterable[Any]: ...
    def stats(self) -> Iterable[Any]: ...


def connect_agent(addr: str) -> AgentLike:
    """The real client; imported here so the UI starts (and says so) even where it is missing."""
    from edgeinspect.core.agent_client import AgentClient

    client: AgentLike = AgentClient(addr, timeout_s=AGENT_TIMEOUT_S)
    return client


def _get(obj: Any, name: str, default: Any = "") -> Any:
    value = getattr(obj, name, default)
    return default if value is None else value


def _roles(name: str, version: str, aliases: list[Any]) -> tuple[list[str], str]:
    """The aliases that route to this version and its role (primary wins over shadow)."""
    primary = [
        str(_get(a, "alias")) for a in aliases if _get(a, "name") == name and _get(a, "version") == version
    ]
    shadow = [
        str(_get(a, "alias"))
        for a in aliases
        if _get(a, "name") == name and _get(a, "shadow_version") == version
    ]
    if primary:
        return primary, "primary"
    if shadow:
        return shadow, "shadow"
    return [], "loaded"


class ModelInventory:
    """Asks the agent for its table; one call, several RPCs, always a ``ModelsOut``."""

    def __init__(self, addr: str | None, jobs: JobBoard, connect: Callable[[str], AgentLike] = connect_agent):
        self._addr = addr
        self._jobs = jobs
        self._connect = connect
        self._client: AgentLike | None = None

    def snapshot(self) -> ModelsOut:
        """The current table; the agent's failures become the ``agent`` state and a message."""
        last_job, device_state = self._jobs.last(), self._jobs.device_state()
        if not self._addr:
            return ModelsOut(
                agent="not_configured",
                message="no agent configured (set EI_AGENT_ADDR)",
                models=[],
                last_job=last_job,
                device_state=device_state,
            )
        try:
            rows = self._rows()
        except (grpc.RpcError, EdgeInspectError, OSError, ImportError) as exc:
            log.warning("agent_unreachable", addr=self._addr, error=str(exc)[:300])
            self._client = None
            return ModelsOut(
                agent="unreachable",
                message=f"no agent reachable at {self._addr}",
                models=[],
                last_job=last_job,
                device_state=device_state,
            )
        message = "" if rows else "no model loaded"
        return ModelsOut(
            agent="ok", message=message, models=rows, last_job=last_job, device_state=device_state
        )

    def _rows(self) -> list[ModelRow]:
        if self._client is None:
            self._client = self._connect(self._addr or "")
        versions = list(self._client.list_versions())
        aliases = list(self._client.list_aliases())
        stats = {(str(_get(s, "name")), str(_get(s, "version"))): s for s in self._client.stats()}
        rows = [self._row(v, aliases, stats) for v in versions]
        order = {"primary": 0, "shadow": 1, "loaded": 2}
        return sorted(rows, key=lambda r: (r.name, order[r.role], r.version))

    def _row(self, version: Any, aliases: list[Any], stats: dict[tuple[str, str], Any]) -> ModelRow:
        name, ver = str(_get(version, "name")), str(_get(version, "version"))
        names, role = _roles(name, ver, aliases)
        stat = stats.get((name, ver))
        sha = str(_get(version, "sha256"))
        return ModelRow(
            name=name,
            version=ver,
            aliases=names,
            role=role,  # type: ignore[arg-type]
            sha256=sha,
            sha256_short=sha[:SHA_PREFIX],
            task=str(_get(version, "task")),
            execution_provider=str(_get(version, "execution_provider")),
            loaded_at_ns=int(_get(version, "loaded_at_ns", 0)),
            p50_ms=float(_get(stat, "p50_ms", 0.0)) if stat is not None else None,
            p99_ms=float(_get(stat, "p99_ms", 0.0)) if stat is not None else None,
            last_job=self._jobs.for_version(name, ver),
        )

    def close(self) -> None:
        close = getattr(self._client, "close", None)
        if callable(close):
            close()
        self._client = None
