"""The model table: what the edge agent has loaded, joined with aliases, latency and deployment jobs.

The UI talks to the agent only through ``edgeinspect.core.agent_client.AgentClient`` (its gRPC
stubs, no onnxruntime). An agent that is not configured or not reachable is a state the page shows
("no agent reachable"), never an error page.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Literal, Protocol

from edgeinspect.core.agent_client import AgentClient, AliasInfo, ModelStats, ModelVersionInfo
from edgeinspect.core.agent_tls import ClientTls
from edgeinspect.core.errors import EdgeInspectError
from edgeinspect.core.observability import get_logger
from edgeinspect.core.thresholds import OverrideTable

from edgeinspect_ui.api.schemas import JobOut, ModelRow, ModelsOut, ThresholdOut
from edgeinspect_ui.feed.jobs import JobBoard
from edgeinspect_ui.feed.views import SHA_PREFIX

log = get_logger(__name__)
AGENT_TIMEOUT_S = 3.0  # a stuck agent must not freeze the table for long
Role = Literal["primary", "shadow", "loaded"]
ROLE_ORDER: dict[str, int] = {"primary": 0, "shadow": 1, "loaded": 2}


class AgentLike(Protocol):
    """The part of ``AgentClient`` the UI uses (versions, aliases and latency stats)."""

    def list_versions(self) -> list[ModelVersionInfo]: ...
    def list_aliases(self) -> list[AliasInfo]: ...
    def stats(self, name: str = "") -> list[ModelStats]: ...
    def close(self) -> None: ...


def connect_agent(addr: str, token: str = "", tls: ClientTls | None = None) -> AgentLike:
    """The real client (channels connect lazily, so this never blocks); ``token``: EI_AGENT_TOKEN,
    ``tls``: the EI_AGENT_TLS_* trust for a TCP address."""
    return AgentClient(addr, timeout_s=AGENT_TIMEOUT_S, token=token, tls=tls)


def role_of(name: str, version: str, aliases: Sequence[AliasInfo]) -> tuple[list[str], Role]:
    """The aliases that route to this version, and its role (primary wins over shadow)."""
    primary = [a.alias for a in aliases if a.name == name and a.version == version]
    if primary:
        return primary, "primary"
    shadow = [a.alias for a in aliases if a.name == name and a.shadow_version == version]
    if shadow:
        return shadow, "shadow"
    return [], "loaded"


def thresholds_of(info: ModelVersionInfo, overrides: Mapping[str, OverrideTable]) -> dict[str, ThresholdOut]:
    """line -> the thresholds its verdicts use for this version (none when the manifest is unreadable)."""
    try:
        manifest = info.manifest()
    except EdgeInspectError:
        return {}
    image, pixel = float(manifest.thresholds.image), manifest.thresholds.pixel
    out: dict[str, ThresholdOut] = {}
    for line, table in overrides.items():
        used = table.effective(info.name, info.version, image, pixel)
        source = used.image_source if used.image_source != "manifest" else used.pixel_source
        by = used.by
        out[line] = ThresholdOut(
            image=used.image,
            pixel=used.pixel,
            manifest_image=image,
            manifest_pixel=pixel,
            overridden=used.overridden,
            source=source,
            set_by=by.set_by if by else "",
            set_at=by.set_at if by else 0.0,
            reason=by.reason if by else "",
        )
    return out


def build_rows(
    versions: Sequence[ModelVersionInfo],
    aliases: Sequence[AliasInfo],
    stats: Sequence[ModelStats],
    job_of: Callable[[str, str], JobOut | None] = lambda _name, _version: None,
    overrides: Mapping[str, OverrideTable] | None = None,
) -> list[ModelRow]:
    """One row per loaded version, primaries first within a model; ``overrides``: line -> table."""
    latency = {(s.name, s.version): s for s in stats}
    rows = []
    for info in versions:
        names, role = role_of(info.name, info.version, aliases)
        stat = latency.get((info.name, info.version))
        rows.append(
            ModelRow(
                name=info.name,
                version=info.version,
                aliases=names,
                role=role,
                sha256=info.sha256,
                sha256_short=info.sha256[:SHA_PREFIX],
                task=info.task,
                execution_provider=info.execution_provider,
                loaded_at_ns=info.loaded_at_ns,
                p50_ms=stat.p50_ms if stat is not None and stat.requests else None,
                p99_ms=stat.p99_ms if stat is not None and stat.requests else None,
                last_job=job_of(info.name, info.version),
                thresholds=thresholds_of(info, overrides or {}),
            )
        )
    return sorted(rows, key=lambda r: (r.name, ROLE_ORDER[r.role], r.version))


class ModelInventory:
    """Asks the agent for its table; one call, three RPCs, always a ``ModelsOut``."""

    def __init__(
        self,
        addr: str | None,
        jobs: JobBoard,
        connect: Callable[[str], AgentLike] = connect_agent,
        overrides: Callable[[], Mapping[str, OverrideTable]] = dict,
    ):
        self._addr = addr
        self._jobs = jobs
        self._connect = connect
        self._overrides = overrides
        self._client: AgentLike | None = None

    def snapshot(self) -> ModelsOut:
        """The current table; the agent's failures become the ``agent`` state and a message."""
        last_job, device_state = self._jobs.last(), self._jobs.device_state()
        if not self._addr:
            message = "no agent configured (set EI_AGENT_ADDR)"
            return ModelsOut(
                agent="not_configured",
                message=message,
                models=[],
                last_job=last_job,
                device_state=device_state,
            )
        try:
            if self._client is None:
                self._client = self._connect(self._addr)
            client = self._client
            rows = build_rows(
                client.list_versions(),
                client.list_aliases(),
                client.stats(),
                self._jobs.for_version,
                self._overrides(),
            )
        except EdgeInspectError as exc:
            log.warning("agent_unreachable", addr=self._addr, error=str(exc)[:300])
            message = f"no agent reachable at {self._addr}"
            if getattr(exc, "code", "") == "UNAUTHENTICATED":
                message = f"the agent at {self._addr} wants its token: set EI_AGENT_TOKEN"
            return ModelsOut(
                agent="unreachable", message=message, models=[], last_job=last_job, device_state=device_state
            )
        message = "" if rows else "no model loaded"
        return ModelsOut(
            agent="ok", message=message, models=rows, last_job=last_job, device_state=device_state
        )

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
