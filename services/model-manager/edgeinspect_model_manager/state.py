"""The device's desired state, persisted in ``{model_dir}/state.json`` and restored before the network.

What it holds: the versions installed on disk (where, from which package), where every alias points
(primary and shadow), a rollback watch in progress, the line's threshold overrides (who set them, when,
why), and the recent jobs with their outcome and whether the cloud has acknowledged it. A rebooted
device reads it, loads the aliased versions into the agent and sets the aliases, so it serves exactly
what it served before, even with the factory network down.

Writes are atomic (temp file in the same folder, fsync, rename, fsync the folder): after a power cut the
file is the old state or the new one, never half of either. A file that does not parse is kept aside
(``state.json.corrupt-<time>``) and the device starts from empty rather than guessing.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import time
from pathlib import Path
from typing import Literal

from edgeinspect.core.errors import StorageError
from edgeinspect.core.observability import get_logger
from edgeinspect.core.package import parse_version
from edgeinspect.core.thresholds import Override
from pydantic import BaseModel, ConfigDict, Field, ValidationError

log = get_logger(__name__)
STATE_SCHEMA = 1
JobStatus = Literal["IN_PROGRESS", "SUCCEEDED", "FAILED"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore")


class InstalledVersion(_Model):
    """A verified package folder under ``{model_dir}/{name}/{version}``."""

    name: str
    version: str
    path: str
    task: str
    package_sha256: str | None = None
    installed_at: float = Field(default_factory=time.time)
    job_id: str = ""

    @property
    def ref(self) -> str:
        return f"{self.name}:{self.version}"


class AliasState(_Model):
    """Where an alias points; ``shadow`` is a version of the same model ("" when none)."""

    name: str
    version: str
    shadow: str = ""


class PreviousTarget(_Model):
    """What an alias pointed at before a swap (None in ``Watch.previous`` when it was new)."""

    name: str
    version: str


class Watch(_Model):
    """A swap still on probation: enough to finish (or undo) it after a restart."""

    job_id: str
    alias: str
    name: str
    version: str
    previous: PreviousTarget | None = None
    started_at: float = Field(default_factory=time.time)


class JobRecord(_Model):
    """A job this device has worked on; ``reported`` is True once the cloud accepted the final status."""

    job_id: str
    operation: str = ""
    status: JobStatus = "IN_PROGRESS"
    model: str = ""
    version: str = ""
    reason: str = ""
    stage: str = ""
    details: dict[str, str] = Field(default_factory=dict)
    execution_number: int | None = None
    reported: bool = False
    updated_at: float = Field(default_factory=time.time)


class DeviceState(_Model):
    """Everything in state.json; mutate copies (``model_copy(deep=True)``), never the live object."""

    schema_version: int = STATE_SCHEMA
    versions: dict[str, InstalledVersion] = Field(default_factory=dict)
    aliases: dict[str, AliasState] = Field(default_factory=dict)
    watch: Watch | None = None
    jobs: list[JobRecord] = Field(default_factory=list)
    thresholds: dict[str, Override] = Field(default_factory=dict)
    """``MODEL`` or ``MODEL:VERSION`` -> the override set by a ``set_threshold`` job."""

    def installed(self, name: str, version: str) -> InstalledVersion | None:
        return self.versions.get(f"{name}:{version}")

    def versions_of(self, name: str) -> list[InstalledVersion]:
        """Installed versions of ``name``, oldest version first (compared as versions)."""
        found = [v for v in self.versions.values() if v.name == name]
        return sorted(found, key=lambda v: parse_version(v.version))

    def aliases_using(self, name: str, version: str) -> list[str]:
        """Aliases whose primary or shadow is ``name:version``."""
        return sorted(
            alias
            for alias, target in self.aliases.items()
            if target.name == name and version in (target.version, target.shadow)
        )

    def job(self, job_id: str) -> JobRecord | None:
        for record in reversed(self.jobs):
            if record.job_id == job_id:
                return record
        return None

    def record_job(self, record: JobRecord, keep: int) -> None:
        """Replace the record of the same job (or append), keeping the newest ``keep`` records."""
        self.jobs = [r for r in self.jobs if r.job_id != record.job_id] + [record]
        unreported = [r for r in self.jobs if not r.reported]
        reported = [r for r in self.jobs if r.reported][-keep:]
        self.jobs = sorted(unreported + reported, key=lambda r: r.updated_at)

    def last_job(self) -> JobRecord | None:
        return max(self.jobs, key=lambda r: r.updated_at) if self.jobs else None


class StateFile:
    """Reads and atomically writes one state.json."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> DeviceState:
        """The saved state; empty when there is none, and empty (file kept aside) when it is unreadable."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return DeviceState()
        except OSError as exc:
            raise StorageError(
                f"cannot read {self.path}: {exc.strerror or exc}", hint="check permissions"
            ) from exc
        try:
            data = json.loads(raw)
            if not isinstance(data, dict) or data.get("schema_version") != STATE_SCHEMA:
                raise ValueError(
                    f"schema_version {data.get('schema_version') if isinstance(data, dict) else '?'}"
                )
            return DeviceState.model_validate(data)
        except (ValueError, ValidationError) as exc:
            aside = self.path.with_name(f"{self.path.name}.corrupt-{int(time.time())}")
            with contextlib.suppress(OSError):
                self.path.rename(aside)
            log.error("state_unreadable", path=str(self.path), kept_as=str(aside), error=str(exc)[:500])
            return DeviceState()

    def save(self, state: DeviceState) -> None:
        """Write atomically; raises ``StorageError`` (the old file intact) when the disk refuses."""
        body = json.dumps(state.model_dump(mode="json"), indent=2, sort_keys=True).encode("utf-8") + b"\n"
        folder = self.path.parent
        tmp = folder / f".{self.path.name}.{secrets.token_hex(6)}.tmp"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            with open(tmp, "xb") as fh:
                fh.write(body)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
            fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise StorageError(
                f"cannot write {self.path}: {exc.strerror or exc}",
                hint="free disk space in the model folder; the previous state file is unchanged",
            ) from exc
