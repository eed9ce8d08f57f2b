"""Job documents this device accepts, parsed into typed operations (see docs/jobs-protocol.md).

Two dialects arrive in the ``jobDocument`` of a job execution:

- ours: ``{"operation": "deploy_model", "model": {"name", "version", "url", "sha256", "size"},
  "role": "primary"|"shadow", "alias": "...", "rollback_on_failure": true}`` and
  ``{"operation": "remove_model", "model": {"name", "version"}}`` and
  ``{"operation": "set_threshold", "model": {"name", "version"?}, "thresholds": {"image": 0.3,
  "pixel": null}, "requested_by": "...", "reason": "..."}`` (a line's override of the manifest's
  thresholds: a number sets one, null returns it to the manifest's, a missing key leaves it);
- the original SageMaker Edge Manager sample's ``{"type": "new_model", "model_name", "model_version",
  "model_package_bucket", "model_package_key"}``, so a fleet migrates without changing its cloud side.
  It carries no sha256: the package's signed manifest (every file's hash) is then the integrity check,
  and, like the sample, it only ever moves a model forward (a version not newer than the serving one
  is refused), but comparing versions as versions ("1.10" > "1.9"), never as floats.

Anything else fails the job with a reason that names the bad field, never a stack trace.

    >>> parse_job_document({"operation": "remove_model", "model": {"name": "cls", "version": "3"}})
    RemoveModel(name='cls', version='3')
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal
from urllib.parse import quote, urlsplit

from edgeinspect.core import safejson
from edgeinspect.core.errors import PackageError
from edgeinspect.core.ids import MODEL_NAME_MAX, MODEL_NAME_PATTERN, MODEL_VERSION_MAX
from edgeinspect.core.package import parse_version
from edgeinspect.core.thresholds import Threshold
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from edgeinspect_model_manager.errors import JobDocumentError

Role = Literal["primary", "shadow"]
Dialect = Literal["deploy_model", "new_model"]
URL_SCHEMES = frozenset({"s3", "https", "http", "file"})
SHA256_PATTERN = r"^[0-9a-fA-F]{64}$"
MAX_DOCUMENT_BYTES = 64 * 1024
"""Twice AWS IoT's 32 KB job document limit."""


@dataclass(frozen=True)
class DeployModel:
    """Install ``name:version`` from ``url`` and serve it as ``role`` (behind ``alias`` when given)."""

    name: str
    version: str
    url: str
    sha256: str | None
    size: int | None
    role: Role = "primary"
    alias: str | None = None
    rollback_on_failure: bool = True
    dialect: Dialect = "deploy_model"

    @property
    def ref(self) -> str:
        return f"{self.name}:{self.version}"


@dataclass(frozen=True)
class RemoveModel:
    """Unload and delete ``name:version`` (every version not in use when ``version`` is None)."""

    name: str
    version: str | None = None


@dataclass(frozen=True)
class SetThreshold:
    """Override ``name``'s (or ``name:version``'s) thresholds on this device without a new package.

    ``changes`` holds only the keys the document named: a number sets that threshold, ``None`` returns
    it to the manifest's.
    """

    name: str
    version: str | None
    changes: dict[str, float | None]
    requested_by: str = ""
    reason: str = ""


JobOperation = DeployModel | RemoveModel | SetThreshold


def _check_version(value: str) -> str:
    try:
        parse_version(value)
    except PackageError as exc:
        raise ValueError(exc.message) from exc
    return value


def _version_text(value: object) -> object:
    """The sample's documents may carry a number; keep the text as written ("1.10" stays "1.10")."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return repr(value)
    return value


def _check_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in URL_SCHEMES:
        raise ValueError(f"URL scheme {parts.scheme or '(none)'!r} is not one of s3, https, http, file")
    if parts.scheme in ("s3", "http", "https") and not parts.netloc:
        raise ValueError(f"{value!r} names no bucket or host")
    if not parts.path.strip("/"):
        raise ValueError(f"{value!r} names no object")
    return value


Name = Annotated[str, Field(pattern=MODEL_NAME_PATTERN, max_length=MODEL_NAME_MAX)]
Version = Annotated[
    str, BeforeValidator(_version_text), Field(max_length=MODEL_VERSION_MAX), AfterValidator(_check_version)
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)


class _ModelSpec(_Strict):
    name: Name
    version: Version
    url: Annotated[str, AfterValidator(_check_url)]
    sha256: str = Field(pattern=SHA256_PATTERN)
    size: int | None = Field(default=None, gt=0)


class _DeployDoc(_Strict):
    operation: Literal["deploy_model"]
    model: _ModelSpec
    role: Role = "primary"
    alias: Name | None = None
    rollback_on_failure: bool = True


class _RemoveSpec(_Strict):
    name: Name
    version: Version | None = None


class _RemoveDoc(_Strict):
    operation: Literal["remove_model"]
    model: _RemoveSpec


class _ThresholdValues(_Strict):
    image: Threshold = None
    pixel: Threshold = None

    @model_validator(mode="before")
    @classmethod
    def _some(cls, value: object) -> object:
        if isinstance(value, dict) and not value:
            raise ValueError("name image and/or pixel (a number 0..1, or null for the manifest's)")
        return value


class _ThresholdDoc(_Strict):
    operation: Literal["set_threshold"]
    model: _RemoveSpec
    thresholds: _ThresholdValues
    requested_by: str = Field(default="", max_length=256)
    reason: str = Field(default="", max_length=1024)


class _NewModelDoc(BaseModel):
    """The sample's document; unknown keys are ignored, as the sample itself ignored them."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    type: Literal["new_model"]
    model_name: Name
    model_version: Version
    model_package_bucket: str = Field(min_length=3, max_length=63, pattern=r"^[a-z0-9][a-z0-9.-]+$")
    model_package_key: str = Field(min_length=1, max_length=1024)


def decode_document(raw: object) -> dict[str, Any]:
    """A ``jobDocument`` as an object: AWS sends an object over MQTT, a string over HTTPS; take both."""
    if isinstance(raw, str):
        try:
            raw = safejson.loads(raw, what="the job document", max_bytes=MAX_DOCUMENT_BYTES)
        except safejson.JsonInputError as exc:
            raise JobDocumentError(exc.message, hint=exc.hint) from exc
    if not isinstance(raw, dict):
        raise JobDocumentError(
            f"the job document must be a JSON object, got {type(raw).__name__}",
            hint='e.g. {"operation": "deploy_model", "model": {...}}',
        )
    return raw


def parse_job_document(raw: object) -> JobOperation:
    """The operation a job document asks for; ``JobDocumentError`` naming the bad field otherwise."""
    doc = decode_document(raw)
    if "type" in doc and "operation" not in doc:
        return _new_model(_validate(_NewModelDoc, doc))
    operation = doc.get("operation")
    if operation == "deploy_model":
        return _deploy(_validate(_DeployDoc, doc))
    if operation == "remove_model":
        removal = _validate(_RemoveDoc, doc)
        return RemoveModel(removal.model.name, removal.model.version)
    if operation == "set_threshold":
        setting = _validate(_ThresholdDoc, doc)
        return SetThreshold(
            name=setting.model.name,
            version=setting.model.version,
            changes=setting.thresholds.model_dump(exclude_unset=True),
            requested_by=setting.requested_by,
            reason=setting.reason,
        )
    raise JobDocumentError(
        f"unknown job operation {operation!r}" if operation else "the job document has no 'operation'",
        hint="this device accepts deploy_model, remove_model, set_threshold and the sample's type=new_model",
    )


def _validate(model: type[Any], doc: dict[str, Any]) -> Any:
    try:
        return model.model_validate(doc)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}" for err in exc.errors()
        )
        raise JobDocumentError(
            f"malformed job document: {problems}", hint="see docs/jobs-protocol.md for the fields"
        ) from exc


def _deploy(doc: _DeployDoc) -> DeployModel:
    return DeployModel(
        name=doc.model.name,
        version=doc.model.version,
        url=doc.model.url,
        sha256=doc.model.sha256.lower(),
        size=doc.model.size,
        role=doc.role,
        alias=doc.alias,
        rollback_on_failure=doc.rollback_on_failure,
    )


def _new_model(doc: _NewModelDoc) -> DeployModel:
    key = doc.model_package_key.lstrip("/")
    return DeployModel(
        name=doc.model_name,
        version=doc.model_version,
        url=f"s3://{doc.model_package_bucket}/{quote(key, safe='/')}",
        sha256=None,
        size=None,
        dialect="new_model",
    )
