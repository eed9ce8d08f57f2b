"""The model registry: model groups and numbered versions, kept as plain objects in any object store.

Layout under the store's URL (``s3://bucket/prefix`` or ``file:///folder``)::

    groups/{group}/versions/{n}.json          immutable registration record (claims version n)
    groups/{group}/status/{n}/{seq}.json      append-only status events (approve / reject)
    groups/{group}/packages/{group}-{n}.tar.gz the signed package
    groups/{group}/weights/{group}-{n}.pt      the training checkpoint (``.weights.h5`` for Keras), from
                                              which ``pipeline run --init-from GROUP:n`` fine-tunes

Concurrency without a server or a lock service, on both stores:

- **Version numbers** are claimed by creating ``versions/{n}.json`` with ``put_bytes_if_absent``
  (S3 ``If-None-Match: *``; a hard link on a folder). Of two registrations racing for ``n`` exactly one
  wins; the other rebuilds its package for ``n + 1`` and tries again, so no version is ever lost or
  overwritten. Gaps are possible (a crashed registration), reuse is not.
- **Status changes** never rewrite anything: each is a new event ``status/{n}/{seq}.json`` created the
  same way. Two approvers racing for ``seq`` cannot both win; the loser re-reads and appends at
  ``seq + 1``. This is optimistic concurrency (what ``If-Match`` on an ETag would give) without
  needing ``If-Match`` support, which MinIO, moto and older S3 deployments lack; and it keeps the full
  who/when/why history for audits.

The record is claimed before its package is uploaded (the package key is owned by whoever owns the
version, so it cannot be overwritten by a racer). A registration that dies in between leaves a
pending version whose package is missing; :meth:`ModelRegistry.approve` refuses it.
"""

from __future__ import annotations

import getpass
import re
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from edgeinspect.core.errors import PackageError
from edgeinspect.core.hashing import sha256_file
from edgeinspect.core.ids import is_valid
from edgeinspect.core.observability import get_logger
from edgeinspect.core.package import INT8_MODEL_FILE, MANIFEST_FILE, Manifest, utc_now
from edgeinspect.core.safejson import clip
from edgeinspect.core.storage import ObjectInfo, ObjectStore, open_store
from pydantic import JsonValue, ValidationError

from edgeinspect_cloud.registry.errors import RegistryError, VersionNotFoundError
from edgeinspect_cloud.registry.gate import GATE_KEY, rejudge
from edgeinspect_cloud.registry.records import (
    APPROVED,
    DECISIONS,
    PENDING,
    REJECTED,
    ModelVersion,
    PackageRef,
    Registration,
    Status,
    StatusChange,
    WeightsRef,
    parse_record,
    record_bytes,
)

log = get_logger(__name__)

PackageBuilder = Callable[[int], Path]
"""Builds the signed package for a given version number and returns the ``.tar.gz`` path.

Called again with ``n + 1`` when another registration claimed ``n`` first, because the version is
inside the signed manifest (and the file name)."""

MAX_CLAIM_ATTEMPTS = 1000
_MAX_MANIFEST_BYTES = 1 << 20
_VERSION_KEY = re.compile(r"^(\d+)\.json$")
_EVENT_KEY = re.compile(r"^(\d+)/(\d+)\.json$")
_JSON = "application/json"


@dataclass(frozen=True)
class TrainingWeights:
    """A checkpoint to store with a version: the file, its framework and the config that built it."""

    path: Path
    format: Literal["pytorch", "keras"]
    config: dict[str, JsonValue] = field(default_factory=dict)

    @property
    def suffix(self) -> str:
        return ".weights.h5" if self.format == "keras" else ".pt"


def current_user() -> str:
    """Who to record as the actor when none is given: the login name, or ``unknown``."""
    try:
        return getpass.getuser() or "unknown"
    except (KeyError, OSError):
        return "unknown"


class ModelRegistry:
    """Model groups (e.g. ``defect-cls``) with integer versions and an approval status.

    Example::

        registry = ModelRegistry.open("file:///srv/registry")
        mv = registry.register("defect-cls", lambda n: build_my_package(version=n))
        registry.approve("defect-cls", mv.version, by="alice", comment="AP 0.98 on line 3 data")
    """

    def __init__(self, store: ObjectStore, *, max_attempts: int = MAX_CLAIM_ATTEMPTS) -> None:
        self.store = store
        self.max_attempts = max_attempts

    @classmethod
    def open(cls, url: str, **storage_options: Any) -> ModelRegistry:
        """The registry at ``url`` (``s3://bucket/prefix`` or ``file:///folder``); options go to the store."""
        return cls(open_store(url, **storage_options))

    @property
    def url(self) -> str:
        return self.store.url

    # ----------------------------------------------------------------------------- reading

    def groups(self) -> list[str]:
        """Every group that has at least one version, sorted by name."""
        names = {info.key.split("/")[1] for info in self.store.list("groups/") if info.key.count("/") >= 3}
        return sorted(name for name in names if _valid_group(name))

    def version_numbers(self, group: str) -> list[int]:
        """The claimed version numbers of ``group``, ascending (empty for an unknown group)."""
        prefix = f"{_group_prefix(group)}versions/"
        numbers = []
        for info in self.store.list(prefix):
            match = _VERSION_KEY.match(info.key[len(prefix) :])
            if match:
                numbers.append(int(match.group(1)))
        return sorted(numbers)

    def versions(self, group: str) -> list[ModelVersion]:
        """Every version of ``group`` with its current status, oldest first."""
        events = self._all_events(group)
        return [
            ModelVersion(registration=reg, history=[*_initial(reg), *events.get(reg.version, [])])
            for reg in (self._registration(group, n) for n in self.version_numbers(group))
        ]

    def get(self, group: str, version: int) -> ModelVersion:
        """One version with its full status history; ``VersionNotFoundError`` if it does not exist."""
        registration = self._registration(group, version)
        return ModelVersion(
            registration=registration, history=[*_initial(registration), *self._events(group, version)]
        )

    def latest(self, group: str, status: Status | None = APPROVED) -> ModelVersion | None:
        """The highest version of ``group`` whose current status is ``status`` (any status if None)."""
        for mv in reversed(self.versions(group)):
            if status is None or mv.status == status:
                return mv
        return None

    def next_version(self, group: str) -> int:
        """The number the next registration will try first (one above the highest claimed)."""
        numbers = self.version_numbers(group)
        return numbers[-1] + 1 if numbers else 1

    # ----------------------------------------------------------------------------- writing

    def register(
        self,
        group: str,
        build: PackageBuilder,
        *,
        created_by: str | None = None,
        description: str = "",
        extra: dict[str, JsonValue] | None = None,
        weights: TrainingWeights | None = None,
    ) -> ModelVersion:
        """Claim the next free version of ``group``, then upload the package ``build(n)`` made for it.

        The registration copies task, framework, metrics, thresholds and dataset fingerprint from the
        package's manifest, whose ``name`` must be ``group`` and ``version`` must be ``str(n)``. The new
        version starts as ``PendingManualApproval``. ``weights`` (the training checkpoint) are stored
        beside the package, so a later run can fine-tune from this version.
        """
        _check_group(group)
        actor = created_by or current_user()
        number = self.next_version(group)
        for _ in range(self.max_attempts):
            path = Path(build(number))
            registration = self._registration_for(group, number, path, actor, description, extra or {})
            if weights is not None:
                registration = registration.model_copy(
                    update={"weights": self._weights_ref(group, number, weights)}
                )
            if self.store.put_bytes_if_absent(_version_key(group, number), record_bytes(registration), _JSON):
                self._upload_package(registration, path, weights)
                log.info("model_registered", group=group, version=number, url=registration.package.url)
                return ModelVersion(registration=registration, history=_initial(registration))
            log.info("version_taken", group=group, version=number)
            number = max(number + 1, self.next_version(group))
        raise RegistryError(
            f"could not claim a version of {group} in {self.max_attempts} attempts",
            hint="too many concurrent registrations; retry later",
        )

    def approve(
        self, group: str, version: int, *, by: str | None = None, comment: str = "", force: bool = False
    ) -> ModelVersion:
        """Mark a version ``Approved`` (deployable), after checking its package is really in the store
        and its recorded figures against its recorded quality gate.

        A version below its gate is refused unless ``force`` with a ``comment`` saying why; the forced
        approval records which figures it overrode, by whom and when. A version registered without a
        gate record (by another tool) has no gate to be below.
        """
        mv = self.get(group, version)
        self._check_package_stored(mv)
        overrode = _gate_failures(mv, force=force, comment=comment)
        return self.set_status(group, version, APPROVED, by=by, comment=comment, overrode=overrode)

    def reject(self, group: str, version: int, *, by: str | None = None, comment: str = "") -> ModelVersion:
        """Mark a version ``Rejected`` (never to be deployed; also revokes an earlier approval)."""
        return self.set_status(group, version, REJECTED, by=by, comment=comment)

    def set_status(
        self,
        group: str,
        version: int,
        status: Status,
        *,
        by: str | None = None,
        comment: str = "",
        overrode: list[str] | None = None,
    ) -> ModelVersion:
        """Append a status event; concurrent callers each get their own event, none is lost."""
        if status not in DECISIONS:
            raise RegistryError(
                f"cannot set status {status!r}", hint=f"a version can be set to one of {list(DECISIONS)}"
            )
        self.get(group, version)  # the version must exist
        change = StatusChange(
            status=status, by=by or current_user(), at=utc_now(), comment=comment, overrode=overrode or []
        )
        for _ in range(self.max_attempts):
            seq = len(self._events(group, version)) + 1
            if self.store.put_bytes_if_absent(_event_key(group, version, seq), record_bytes(change), _JSON):
                log.info("model_status", group=group, version=version, status=status, by=change.by, seq=seq)
                return self.get(group, version)
        raise RegistryError(
            f"could not record the status of {group} version {version} in {self.max_attempts} attempts",
            hint="too many concurrent status changes; retry later",
        )

    # ----------------------------------------------------------------------------- internals

    def _registration(self, group: str, version: int) -> Registration:
        _check_group(group)
        key = _version_key(group, version)
        if not self.store.exists(key):
            known = self.version_numbers(group)
            raise VersionNotFoundError(
                f"{group} has no version {version} in registry {self.url}",
                hint=f"known versions: {known}"
                if known
                else "register a model first (edgeinspect pipeline run)",
            )
        return parse_record(Registration, self.store.get_bytes(key), self.store.url_for(key))

    def _events(self, group: str, version: int) -> list[StatusChange]:
        prefix = f"{_group_prefix(group)}status/{version}/"
        return [
            parse_record(StatusChange, self.store.get_bytes(info.key), self.store.url_for(info.key))
            for info in _sorted_events(self.store.list(prefix), len(f"{_group_prefix(group)}status/"))
        ]

    def _all_events(self, group: str) -> dict[int, list[StatusChange]]:
        prefix = f"{_group_prefix(group)}status/"
        events: dict[int, list[StatusChange]] = {}
        for info in _sorted_events(self.store.list(prefix), len(prefix)):
            version = int(info.key[len(prefix) :].split("/")[0])
            change = parse_record(StatusChange, self.store.get_bytes(info.key), self.store.url_for(info.key))
            events.setdefault(version, []).append(change)
        return events

    def _registration_for(
        self, group: str, number: int, path: Path, actor: str, description: str, extra: dict[str, JsonValue]
    ) -> Registration:
        manifest = manifest_from_tar(path)
        if manifest.name != group or manifest.version != str(number):
            raise RegistryError(
                f"package {path.name} is {manifest.name} version {manifest.version}, "
                f"but it is being registered as {group} version {number}",
                hint="build the package with the group as its name and the version the registry asks for",
            )
        key = f"{_group_prefix(group)}packages/{manifest.package_filename}"
        package = PackageRef(
            key=key,
            url=self.store.url_for(key),
            filename=manifest.package_filename,
            sha256=sha256_file(path),
            size=path.stat().st_size,
            has_int8=INT8_MODEL_FILE in manifest.files,
        )
        return Registration(
            group=group,
            version=number,
            task=manifest.task,
            framework=manifest.framework,
            created_at=utc_now(),
            created_by=actor,
            description=description,
            metrics=dict(manifest.metrics),
            thresholds=manifest.thresholds.model_dump(),
            dataset_fingerprint=manifest.dataset_fingerprint,
            package=package,
            extra=extra,
        )

    def _weights_ref(self, group: str, number: int, weights: TrainingWeights) -> WeightsRef:
        filename = f"{group}-{number}{weights.suffix}"
        key = f"{_group_prefix(group)}weights/{filename}"
        return WeightsRef(
            key=key,
            url=self.store.url_for(key),
            filename=filename,
            sha256=sha256_file(weights.path),
            size=weights.path.stat().st_size,
            format=weights.format,
            config=weights.config,
        )

    def _upload_package(
        self, registration: Registration, path: Path, weights: TrainingWeights | None
    ) -> None:
        """Upload after the claim; on failure, reject the version so it is never approved half-made."""
        try:
            self.store.put_file(registration.package.key, path, content_type="application/gzip")
            if weights is not None and registration.weights is not None:
                self.store.put_file(registration.weights.key, weights.path)
        except Exception as exc:  # any failure: the claimed version must not look approvable
            log.error(
                "package_upload_failed",
                group=registration.group,
                version=registration.version,
                error=str(exc),
            )
            self.set_status(
                registration.group,
                registration.version,
                REJECTED,
                by="edgeinspect",
                comment=f"package upload failed: {exc}",
            )
            raise

    def _check_package_stored(self, mv: ModelVersion) -> None:
        package = mv.registration.package
        info = self.store.head(package.key)
        if info is None or info.size != package.size or (info.sha256 not in (None, package.sha256)):
            found = "missing" if info is None else f"{info.size} bytes, sha256 {info.sha256}"
            raise RegistryError(
                f"the package of {mv.group} version {mv.version} at {package.url} is {found}, "
                f"expected {package.size} bytes with sha256 {package.sha256}",
                hint="its registration did not finish; reject it and register the model again",
            )


def manifest_from_tar(path: str | Path) -> Manifest:
    """Read ``manifest.json`` straight out of a package archive (no extraction, no signature check).

    For the registry's own bookkeeping of a package it is registering; devices verify signatures.
    """
    try:
        with tarfile.open(path, "r:gz") as archive:
            member = archive.getmember(MANIFEST_FILE)
            handle = (
                archive.extractfile(member)
                if member.isfile() and member.size <= _MAX_MANIFEST_BYTES
                else None
            )
            if handle is None:
                raise PackageError(f"{path}: {MANIFEST_FILE} is not a small regular file", hint="rebuild it")
            data = handle.read()
    except (OSError, tarfile.TarError, KeyError) as exc:
        raise PackageError(
            f"cannot read {MANIFEST_FILE} from {path}: {exc}", hint="rebuild the package"
        ) from exc
    return Manifest.from_json_bytes(data, source=f"{path}:{MANIFEST_FILE}")


def _gate_failures(mv: ModelVersion, *, force: bool, comment: str) -> list[str]:
    """The gate failures of ``mv`` that this approval overrides; ``RegistryError`` if not forced."""
    record = mv.registration.extra.get(GATE_KEY)
    if not isinstance(record, dict):
        return []
    try:
        judged = rejudge(record)
    except ValidationError as exc:
        raise RegistryError(
            f"{mv.group} version {mv.version} has a damaged quality-gate record: {exc.errors()[0]['msg']}",
            hint="register the model again with edgeinspect pipeline run",
        ) from exc
    if judged.passed:
        return []
    failures = judged.describe_failures()
    if not force:
        raise RegistryError(
            f"{mv.group} version {mv.version} is below its quality gate ({failures}): not approved",
            hint="train a better model, or approve it anyway with --force --comment 'why' (recorded)",
        )
    if not comment.strip():
        raise RegistryError(
            f"approving {mv.group} version {mv.version} past its quality gate ({failures}) needs a reason",
            hint="add --comment 'why this model ships anyway' (kept in the version's history)",
        )
    log.warning("gate_overridden", group=mv.group, version=mv.version, failures=failures)
    return [figure.describe() for figure in judged.failures]


def _initial(registration: Registration) -> list[StatusChange]:
    return [StatusChange(status=PENDING, by=registration.created_by, at=registration.created_at)]


def _sorted_events(infos: Iterator[ObjectInfo], strip: int) -> list[ObjectInfo]:
    """Event objects in (version, seq) numeric order; anything not shaped like an event is ignored."""
    found = [(match, info) for info in infos if (match := _EVENT_KEY.match(info.key[strip:]))]
    found.sort(key=lambda pair: (int(pair[0].group(1)), int(pair[0].group(2))))
    return [info for _, info in found]


def _valid_group(group: str) -> bool:
    return is_valid("model name", group)


def _check_group(group: str) -> None:
    if not _valid_group(group):
        raise RegistryError(
            f"invalid model group name {clip(group)}",
            hint="use letters and digits joined by '-', at most 63 characters (e.g. defect-cls)",
        )


def _group_prefix(group: str) -> str:
    """Every key of a group is built here, so no group name can reach outside ``groups/``."""
    _check_group(group)
    return f"groups/{group}/"


def _version_key(group: str, version: int) -> str:
    return f"{_group_prefix(group)}versions/{version}.json"


def _event_key(group: str, version: int, seq: int) -> str:
    return f"{_group_prefix(group)}status/{version}/{seq:06d}.json"
