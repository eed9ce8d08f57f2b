"""Get a verified package folder at ``{model_dir}/{name}/{version}``: reuse one, or download and unpack.

Order: free-space check, download into ``.staging/{job}`` (size-limited, sha256 against the job),
then ``unpack_package`` (signature with the trusted keys, every file's hash, safe extraction into a
temporary folder renamed into place), then the manifest must name the model and version the job
named. A folder under its final name is therefore always complete and verified, and one this job
created is removed again if the job fails.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from edgeinspect.core.errors import PackageError
from edgeinspect.core.ids import check_job_id, safe_join
from edgeinspect.core.observability import get_logger
from edgeinspect.core.package import Manifest, load_public_keys, unpack_package, verify_package_dir

from edgeinspect_model_manager import fetch
from edgeinspect_model_manager.device import Device
from edgeinspect_model_manager.disk import require_free
from edgeinspect_model_manager.errors import DeployError, JobInterrupted
from edgeinspect_model_manager.jobdoc import DeployModel
from edgeinspect_model_manager.state import InstalledVersion

log = get_logger(__name__)
StageFn = Callable[[str], None]


def staging_for(device: Device, job_id: str) -> Path:
    """The job's own staging folder, strictly inside the staging root.

    ``IdentifierError`` for a job id outside AWS IoT's rule: a job id ``..`` once made the cleanup of
    this folder delete every installed model.
    """
    return safe_join(device.settings.staging_dir, check_job_id(job_id))


@dataclass(frozen=True)
class Installed:
    """A verified folder; ``fresh`` when this job created it (and must remove it on failure)."""

    entry: InstalledVersion
    manifest: Manifest
    fresh: bool


class Installer:
    """One deployment's download-verify-unpack stage."""

    def __init__(self, device: Device, stop: threading.Event, stage: StageFn) -> None:
        self.device = device
        self.settings = device.settings
        self.stop = stop
        self.stage = stage

    def install(self, job_id: str, op: DeployModel) -> Installed:
        keys = load_public_keys(self.settings.trusted_keys_dir)
        existing = self.device.state.installed(op.name, op.version)
        if existing is not None and Path(existing.path).is_dir():
            self._check_same_package(existing, op)
            self.stage("verifying")
            manifest = verify_package_dir(existing.path, keys, label=existing.ref)
            return Installed(existing, manifest, fresh=False)
        folder = self.device.version_dir(op.name, op.version)
        adopted = self._adopt(folder, keys, op)
        if adopted is not None:
            return adopted
        tar, sha256 = self._download(job_id, op)
        self.stage("verifying")
        try:
            _, manifest = unpack_package(tar, folder, keys)
        finally:
            tar.unlink(missing_ok=True)
        self._check_identity(manifest, op, folder)
        return Installed(self._entry(op, folder, manifest, sha256, job_id), manifest, fresh=True)

    def _check_same_package(self, existing: InstalledVersion, op: DeployModel) -> None:
        if op.sha256 and existing.package_sha256 and op.sha256 != existing.package_sha256:
            raise DeployError(
                f"{op.ref} is already installed from a package with sha256 {existing.package_sha256}, "
                f"but the job names {op.sha256}",
                hint="a version must never change: publish it as a new version, or remove_model it first",
            )

    def _adopt(self, folder: Path, keys: Sequence[Ed25519PublicKey], op: DeployModel) -> Installed | None:
        """A folder left by an interrupted run of a job (after the unpack, before the state was saved)."""
        if not folder.exists():
            return None
        try:
            manifest = verify_package_dir(folder, keys, label=op.ref)
            self._check_identity(manifest, op, folder, remove=False)
        except (PackageError, DeployError) as exc:
            log.warning("stale_version_folder_removed", path=str(folder), error=str(exc))
            shutil.rmtree(folder, ignore_errors=True)
            return None
        log.info("version_folder_adopted", path=str(folder))
        return Installed(self._entry(op, folder, manifest, op.sha256, ""), manifest, fresh=True)

    def _download(self, job_id: str, op: DeployModel) -> tuple[Path, str]:
        self.stage("downloading")
        source = fetch.open_source(op.url, self.settings.store_options(), self.settings.allow_plain_http)
        size = op.size or fetch.remote_size(source, self.settings.http_timeout_s)
        limit = min(self.settings.max_package_bytes, op.size or self.settings.max_package_bytes)
        if size > limit:
            raise DeployError(
                f"package {op.url} is {size} bytes, above the limit of {limit}",
                hint="raise EI_MAX_PACKAGE_BYTES if packages this large are expected",
            )
        require_free(
            self.settings.model_dir, size, self.settings.disk_space_factor, self.settings.disk_reserve_bytes
        )
        staging = staging_for(self.device, job_id)
        staging.mkdir(parents=True, exist_ok=True)
        dest = staging / f"{op.name}-{op.version}.tar.gz"
        last = [0]

        def progress(done: int) -> None:
            if self.stop.is_set():
                raise JobInterrupted("stopping during the download; it resumes after the restart")
            self.device.metrics.download_bytes.inc(max(0, done - last[0]))
            last[0] = done

        sha256 = fetch.download(source, dest, op.sha256, limit, progress, self.settings.http_timeout_s)
        return dest, sha256

    @staticmethod
    def _check_identity(manifest: Manifest, op: DeployModel, folder: Path, *, remove: bool = True) -> None:
        if (manifest.name, manifest.version) != (op.name, op.version):
            if remove:
                shutil.rmtree(folder, ignore_errors=True)
            raise DeployError(
                f"the package holds {manifest.name}:{manifest.version}, but the job names {op.ref}",
                hint="the job points at the wrong package; fix its URL or its model name/version",
            )

    @staticmethod
    def _entry(
        op: DeployModel, folder: Path, manifest: Manifest, sha256: str | None, job_id: str
    ) -> InstalledVersion:
        return InstalledVersion(
            name=op.name,
            version=op.version,
            path=str(folder),
            task=manifest.task,
            package_sha256=sha256 or None,
            job_id=job_id,
        )
