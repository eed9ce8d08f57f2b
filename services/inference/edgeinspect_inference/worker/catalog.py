"""What the agent serves right now, as the worker needs it: alias -> version, and each version's manifest.

The manifest of a version never changes while it is loaded, so manifests are cached per
``(name, version)``; aliases move (that is a hot swap), so they are re-read every ``refresh_s`` and at
once whenever a Predict response names a version the cache has not seen. Everything here is read
through the agent's own API (``ListAliases`` / ``ListVersions``); the worker never opens a package.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from edgeinspect.core.errors import PackageError
from edgeinspect.core.observability import get_logger
from edgeinspect.core.package import Manifest

log = get_logger(__name__)


class VersionInfo(Protocol):
    """The fields of the agent's ``ModelVersionInfo`` the worker reads."""

    @property
    def name(self) -> str: ...
    @property
    def version(self) -> str: ...
    @property
    def manifest_json(self) -> str: ...


class AliasInfo(Protocol):
    """The fields of the agent's ``AliasInfo`` the worker reads."""

    @property
    def alias(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def version(self) -> str: ...
    @property
    def shadow_version(self) -> str: ...


class CatalogSource(Protocol):
    """Where the catalog reads from: the agent client."""

    def list_versions(self) -> Iterable[VersionInfo]: ...

    def list_aliases(self) -> Iterable[AliasInfo]: ...


@dataclass(frozen=True, slots=True)
class Target:
    """The version an alias points at, and its manifest (what to preprocess with, how to judge)."""

    alias: str
    manifest: Manifest
    shadow_version: str = ""

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def version(self) -> str:
        return self.manifest.version


class ModelCatalog:
    """Thread-safe cache of aliases and manifests; refreshes itself, never more than once at a time."""

    def __init__(
        self,
        source: CatalogSource,
        *,
        refresh_s: float = 5.0,
        min_interval_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._source = source
        self._refresh_s = refresh_s
        self._min_interval_s = min_interval_s
        self._clock = clock
        self._lock = threading.Lock()
        self._manifests: dict[tuple[str, str], Manifest] = {}
        self._aliases: dict[str, tuple[str, str, str]] = {}
        self._loaded_at = float("-inf")

    def target(self, alias: str) -> Target | None:
        """Where ``alias`` points now (re-read when stale); None when the agent has no such alias."""
        if self._clock() - self._loaded_at >= self._refresh_s:
            self.refresh()
        found = self._aliases.get(alias)
        if found is None:
            self.refresh(force=False)  # a new alias may have appeared since; rate-limited
            found = self._aliases.get(alias)
        if found is None:
            return None
        name, version, shadow = found
        manifest = self.manifest(name, version)
        return Target(alias, manifest, shadow) if manifest is not None else None

    def serves(self, alias: str) -> bool:
        """Whether the agent had ``alias`` at the last read (re-read when stale; never more often)."""
        if self._clock() - self._loaded_at >= self._refresh_s:
            self.refresh()
        return alias in self._aliases

    def manifest(self, name: str, version: str) -> Manifest | None:
        """The manifest of a loaded version; a version not seen before triggers one refresh."""
        cached = self._manifests.get((name, version))
        if cached is None:
            self.refresh(force=True)
            cached = self._manifests.get((name, version))
        return cached

    def aliases(self) -> dict[str, tuple[str, str, str]]:
        """alias -> (name, version, shadow_version) as last read (for logs and status)."""
        return dict(self._aliases)

    def refresh(self, *, force: bool = True) -> None:
        """Re-read aliases and manifests from the agent; without ``force``, at most every min interval."""
        started = self._clock()
        with self._lock:
            if self._loaded_at >= started or (
                not force and self._clock() - self._loaded_at < self._min_interval_s
            ):
                return  # another thread refreshed while we waited, or we just did
            aliases = {a.alias: (a.name, a.version, a.shadow_version) for a in self._source.list_aliases()}
            manifests = dict(self._manifests)
            for info in self._source.list_versions():
                key = (info.name, info.version)
                if key not in manifests:
                    parsed = _parse(info)
                    if parsed is not None:
                        manifests[key] = parsed
            if aliases != self._aliases:
                log.info("aliases_changed", aliases={k: f"{n}:{v}" for k, (n, v, _) in aliases.items()})
            self._aliases = aliases
            self._manifests = manifests
            self._loaded_at = self._clock()


def _parse(info: VersionInfo) -> Manifest | None:
    """A version's manifest, or None (logged) when the agent reports one we cannot read."""
    try:
        return Manifest.from_json_bytes(
            info.manifest_json.encode("utf-8"), source=f"{info.name}:{info.version}"
        )
    except PackageError as exc:
        log.error("manifest_unreadable", model=info.name, version=info.version, error=str(exc))
        return None
