"""The device as the manager sees it: the persisted state, the agent, and the one lock for changing them.

Every change to what the device serves goes through :meth:`Device.change`, which hands out a copy of
the state, saves it atomically when the block ends, and only then makes it the live state: if the save
fails (a full disk) the live state and state.json still agree with each other.
"""

from __future__ import annotations

import contextlib
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from edgeinspect.core.agent_client import AgentClient, ModelVersionInfo
from edgeinspect.core.errors import AgentError
from edgeinspect.core.ids import check_model_name, check_model_version, safe_join
from edgeinspect.core.observability import get_logger

from edgeinspect_model_manager.metrics import ManagerMetrics
from edgeinspect_model_manager.report import Reporter
from edgeinspect_model_manager.settings import ModelManagerSettings
from edgeinspect_model_manager.state import DeviceState, InstalledVersion, StateFile

log = get_logger(__name__)


class Device:
    """Shared by the job thread and the janitor; see the module docstring."""

    def __init__(
        self,
        settings: ModelManagerSettings,
        agent: AgentClient,
        reporter: Reporter,
        metrics: ManagerMetrics,
    ) -> None:
        self.settings = settings
        self.agent = agent
        self.reporter = reporter
        self.metrics = metrics
        self.file = StateFile(settings.state_path)
        self.lock = threading.RLock()
        self.state = DeviceState()
        self.activity = "restoring"

    def load(self) -> DeviceState:
        with self.lock:
            self.state = self.file.load()
            self.metrics.versions_on_disk.set(len(self.state.versions))
            return self.state

    @contextlib.contextmanager
    def change(self) -> Iterator[DeviceState]:
        """Yield a copy to modify; it is saved (atomically) and becomes live when the block exits."""
        with self.lock:
            draft = self.state.model_copy(deep=True)
            yield draft
            self.file.save(draft)
            self.state = draft
            self.metrics.versions_on_disk.set(len(draft.versions))

    def version_dir(self, name: str, version: str) -> Path:
        """``{model_dir}/{name}/{version}``; ``IdentifierError``/``PathEscapeError`` if either is unsafe."""
        return safe_join(self.settings.model_dir, check_model_name(name), check_model_version(version))

    # ---- agent helpers ---------------------------------------------------------------------------

    def loaded(self) -> dict[tuple[str, str], ModelVersionInfo]:
        return {(v.name, v.version): v for v in self.agent.list_versions()}

    def ensure_loaded(self, installed: InstalledVersion) -> bool:
        """Load the version from its folder unless the agent already has it; True if this call loaded it."""
        current = self.loaded().get((installed.name, installed.version))
        if current is not None and Path(current.path) == Path(installed.path):
            return False
        if current is not None:  # loaded from elsewhere (by hand): replace it, unless an alias uses it
            self.agent.unload_version(installed.name, installed.version)
        self.agent.load_version(installed.path)
        return True

    def unload_quietly(self, name: str, version: str) -> bool:
        """Unload if loaded and unused; False (logged) when the agent refuses. Never raises AgentError."""
        try:
            self.agent.unload_version(name, version)
        except AgentError as exc:
            if exc.code != "NOT_FOUND":
                log.warning("unload_refused", model=name, version=version, error=str(exc))
                return False
            return True
        self.reporter.event("model_unloaded", model=name, version=version)
        return True

    def delete_version(self, name: str, version: str) -> None:
        """Unload, delete the folder and forget ``name:version`` (callers check no alias uses it)."""
        self.unload_quietly(name, version)
        with self.change() as state:
            entry = state.versions.pop(f"{name}:{version}", None)
        path = Path(entry.path) if entry else self.version_dir(name, version)
        shutil.rmtree(path, ignore_errors=True)
        with contextlib.suppress(OSError):
            path.parent.rmdir()  # the model's folder, once its last version is gone
        self.reporter.event("model_removed", model=name, version=version)
        log.info("version_deleted", model=name, version=version)

    # ---- reporting -------------------------------------------------------------------------------

    def document(self) -> dict[str, Any]:
        """The device state published on ``ei:events`` and as the retained ``{root}/{thing}/state``."""
        with self.lock:
            state = self.state
            activity = self.activity
        try:
            loaded: set[tuple[str, str]] | None = set(self.loaded())
        except AgentError:
            loaded = None
        models = [
            {
                "name": v.name,
                "version": v.version,
                "task": v.task,
                "aliases": state.aliases_using(v.name, v.version),
                "role": _role(state, v),
                "loaded": None if loaded is None else (v.name, v.version) in loaded,
                "installed_at": round(v.installed_at, 3),
            }
            for name in sorted({v.name for v in state.versions.values()})
            for v in state.versions_of(name)
        ]
        last = state.last_job()
        return {
            "thing": self.settings.thing_name,
            "groups": list(self.settings.thing_groups),
            "line": self.settings.line,
            "state": activity,
            "agent": "unreachable" if loaded is None else "ok",
            "models": models,
            "aliases": {alias: a.model_dump() for alias, a in sorted(state.aliases.items())},
            "thresholds": {key: o.model_dump(mode="json") for key, o in sorted(state.thresholds.items())},
            "last_job": last.model_dump(exclude={"details", "reported"}) if last else None,
            "ts": round(time.time(), 3),
        }

    def publish_state(self, activity: str | None = None) -> None:
        if activity is not None:
            with self.lock:
                self.activity = activity
        self.reporter.device_state(self.document())


def _role(state: DeviceState, version: InstalledVersion) -> str:
    for target in state.aliases.values():
        if target.name == version.name and target.version == version.version:
            return "primary"
    for target in state.aliases.values():
        if target.name == version.name and target.shadow == version.version:
            return "shadow"
    return "standby"
