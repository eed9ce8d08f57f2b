"""What the registry stores about a model version: one immutable JSON record plus its status history.

A record is written once, when its version number is claimed, and never rewritten; approvals and
rejections are separate append-only events (see :mod:`edgeinspect_cloud.registry.registry`). The
models here are the JSON schema of both, so ``registry show --json`` prints exactly what is stored.
"""

from __future__ import annotations

import json
from typing import Literal, TypeVar

from edgeinspect.core.package import Framework
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, JsonValue, ValidationError

from edgeinspect_cloud.registry.errors import RegistryError

RECORD_SCHEMA_VERSION: Literal[1] = 1

Status = Literal["PendingManualApproval", "Approved", "Rejected"]
PENDING: Status = "PendingManualApproval"
APPROVED: Status = "Approved"
REJECTED: Status = "Rejected"
DECISIONS: tuple[Status, ...] = (APPROVED, REJECTED)
"""The statuses a person may set; ``PendingManualApproval`` is only ever the initial one."""


class _Record(BaseModel):
    """Strict and immutable: an unknown key in stored JSON is a schema problem, not something to drop."""

    model_config = ConfigDict(extra="forbid", frozen=True)


RecordT = TypeVar("RecordT", bound=_Record)


class StatusChange(_Record):
    """One status event: who set which status, when, and why."""

    status: Status
    by: str = Field(min_length=1)
    at: AwareDatetime
    comment: str = ""
    overrode: list[str] = Field(default_factory=list)
    """The quality-gate failures an approver overrode with ``--force`` (the comment says why)."""


class PackageRef(_Record):
    """Where the signed package of a version lives in the registry's store, and how to check it."""

    key: str
    url: str
    filename: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size: int = Field(ge=0)
    has_int8: bool = False


class WeightsRef(_Record):
    """The training checkpoint of a version (``pipeline run --init-from`` fine-tunes from it).

    Packages hold optimised ONNX only (batch norms folded, int8 beside it), which cannot be trained
    further; the framework's own weights are stored beside the package, never shipped to devices.
    ``config`` is the training configuration that built them: a fine-tune rebuilds the same network
    (input size, width, crops) from it.
    """

    key: str
    url: str
    filename: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size: int = Field(ge=0)
    format: Literal["pytorch", "keras"]
    config: dict[str, JsonValue] = Field(default_factory=dict)


class Registration(_Record):
    """The immutable part of a version, written once at ``groups/{group}/versions/{n}.json``.

    Everything the manifest says about provenance is copied here (task, framework, metrics,
    thresholds, dataset fingerprint) so a listing never has to download a package.
    """

    schema_version: Literal[1] = RECORD_SCHEMA_VERSION
    group: str
    version: int = Field(ge=1)
    task: Literal["classification", "segmentation", "multitask", "anomaly"]
    framework: Framework
    created_at: AwareDatetime
    created_by: str = Field(min_length=1)
    description: str = ""
    metrics: dict[str, float] = Field(default_factory=dict)
    thresholds: dict[str, float | None] = Field(default_factory=dict)
    dataset_fingerprint: str
    package: PackageRef
    extra: dict[str, JsonValue] = Field(default_factory=dict)
    weights: WeightsRef | None = None
    """The training checkpoint (versions registered before weights were stored have none)."""


class ModelVersion(_Record):
    """A registration together with its status history (oldest first); ``status`` is the latest one."""

    registration: Registration
    history: list[StatusChange] = Field(min_length=1)

    @property
    def group(self) -> str:
        return self.registration.group

    @property
    def version(self) -> int:
        return self.registration.version

    @property
    def status(self) -> Status:
        return self.history[-1].status

    @property
    def decided(self) -> StatusChange | None:
        """The latest approval or rejection, or None while the version waits for one."""
        return self.history[-1] if self.status != PENDING else None

    def to_json(self) -> dict[str, JsonValue]:
        """The JSON view used by ``--json`` output: the record, its status and its full history."""
        data: dict[str, JsonValue] = self.registration.model_dump(mode="json")
        data["status"] = self.status
        data["history"] = [change.model_dump(mode="json") for change in self.history]
        return data


def parse_record(model: type[RecordT], data: bytes, source: str) -> RecordT:
    """Parse stored JSON into ``model``, raising ``RegistryError`` that names the object and the field."""
    try:
        return model.model_validate(json.loads(data.decode("utf-8")))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RegistryError(
            f"{source} is not valid JSON: {exc}", hint="the registry object is damaged"
        ) from exc
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or '<root>'}: {e['msg']}" for e in exc.errors())
        raise RegistryError(
            f"{source} is not a valid registry record: {problems}",
            hint="it was written by another edgeinspect version or edited by hand",
        ) from exc


def record_bytes(record: _Record) -> bytes:
    """Deterministic JSON bytes (sorted keys, trailing newline) for storing a record."""
    text = json.dumps(record.model_dump(mode="json"), sort_keys=True, indent=2, ensure_ascii=False)
    return (text + "\n").encode("utf-8")
