"""One ``deploy_model`` job: install, load, smoke-test, then hand over to the swap (or shadow) stage.

The rule every path keeps: until the alias moves, nothing the device serves has changed; a failure at
any stage unloads the half-loaded version, removes a folder this job created and the staging folder,
and reports FAILED with the reason. After the move, the previous version stays loaded through the
rollback watch, so undoing the swap is one more atomic alias move (see ``swap``).
"""

from __future__ import annotations

import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from edgeinspect.core.errors import AgentError, EdgeInspectError
from edgeinspect.core.observability import get_logger
from edgeinspect.core.package import Manifest, load_public_keys, verify_package_dir

from edgeinspect_model_manager import policy
from edgeinspect_model_manager.device import Device
from edgeinspect_model_manager.disk import disk_full_reason
from edgeinspect_model_manager.errors import DeployError, DiskFullError, JobInterrupted, is_disk_full
from edgeinspect_model_manager.install import Installed, Installer, staging_for
from edgeinspect_model_manager.jobdoc import DeployModel
from edgeinspect_model_manager.outcome import Outcome, Progress
from edgeinspect_model_manager.retention import Retention
from edgeinspect_model_manager.smoke import smoke_test
from edgeinspect_model_manager.swap import Swapper

log = get_logger(__name__)
_STAGE_WORDS = {"downloading": "downloading", "verifying": "unpacking", "loading": "loading"}


@dataclass
class _Run:
    """What one deployment has done so far, so that a failure undoes exactly that."""

    job_id: str
    op: DeployModel
    installed: Installed | None = None
    loaded_here: bool = False
    stage: str = "validating"
    stage_started: float = field(default_factory=time.monotonic)


class Deployer:
    """Runs deploy jobs on the job thread; see the module docstring for the guarantees."""

    def __init__(
        self, device: Device, retention: Retention, stop: threading.Event, progress: Progress
    ) -> None:
        self.device = device
        self.settings = device.settings
        self.retention = retention
        self.stop = stop
        self.progress = progress

    def deploy(self, job_id: str, op: DeployModel) -> Outcome:
        run = _Run(job_id, op)

        def stage(name: str, **details: str) -> None:
            self._stage(run, name, details)

        swapper = Swapper(self.device, self.retention, self.stop, stage)
        try:
            pending = self.device.state.watch
            if pending is not None and pending.job_id == job_id and self._still_swapped(pending.alias, op):
                return swapper.resume(pending, self._verified_manifest(op))
            run.installed = Installer(self.device, self.stop, stage).install(job_id, op)
            self._check_forward(op)
            stage("loading")
            run.loaded_here = self.device.ensure_loaded(run.installed.entry)
            stage("smoke_testing")
            entry, manifest = run.installed.entry, run.installed.manifest
            smoke_test(
                self.device.agent,
                Path(entry.path),
                manifest,
                entry.ref,
                self.settings.smoke_rtol,
                self.settings.smoke_atol,
            )
            with self.device.change() as state:
                state.versions[entry.ref] = entry
            run.installed = Installed(entry, manifest, fresh=False)
            alias = self._alias_for(op, manifest.task)
            if op.role == "shadow":
                return swapper.attach_shadow(op, alias)
            return swapper.swap(job_id, op, alias, manifest)
        except JobInterrupted:
            self._undo(run)
            raise
        except Exception as exc:  # every failure becomes a FAILED job with a reason, never a crash
            reason = self._reason(run, exc)
            self._undo(run)
            return Outcome.failed(reason, stage=run.stage, model=op.name, version=op.version)
        finally:
            self._observe_stage(run)
            if not self.stop.is_set():  # an interrupted download is kept, to resume after the restart
                shutil.rmtree(staging_for(self.device, job_id), ignore_errors=True)

    # ---- helpers ---------------------------------------------------------------------------------

    def _stage(self, run: _Run, name: str, details: dict[str, str]) -> None:
        self._observe_stage(run)
        run.stage, run.stage_started = name, time.monotonic()
        self.progress(name, details)

    def _observe_stage(self, run: _Run) -> None:
        self.device.metrics.stage_seconds.labels(run.stage).observe(time.monotonic() - run.stage_started)

    def _still_swapped(self, alias: str, op: DeployModel) -> bool:
        target = self.device.state.aliases.get(alias)
        return target is not None and (target.name, target.version) == (op.name, op.version)

    def _verified_manifest(self, op: DeployModel) -> Manifest:
        installed = self.device.state.installed(op.name, op.version)
        if installed is None:
            raise DeployError(f"{op.ref} is aliased but not installed", hint="deploy it again")
        return verify_package_dir(installed.path, load_public_keys(self.settings.trusted_keys_dir))

    def _check_forward(self, op: DeployModel) -> None:
        """The sample's ``new_model`` only moves forward; compared as versions ("1.10" > "1.9")."""
        if op.dialect != "new_model":
            return
        for target in self.device.state.aliases.values():
            if target.name != op.name or target.version == op.version:
                continue
            if not policy.is_newer(op.version, target.version):
                raise DeployError(
                    f"version {op.version} of {op.name} is not newer than the serving version "
                    f"{target.version}",
                    hint="new_model only upgrades; use a deploy_model job to go back to an older version",
                )

    @staticmethod
    def _alias_for(op: DeployModel, task: str) -> str:
        try:
            return op.alias or policy.default_alias(task)
        except ValueError as exc:
            raise DeployError(str(exc)) from exc

    def _reason(self, run: _Run, exc: Exception) -> str:
        if isinstance(exc, DiskFullError):
            return exc.message
        if is_disk_full(exc):
            return disk_full_reason(self.settings.model_dir, _STAGE_WORDS.get(run.stage, run.stage))
        if isinstance(exc, AgentError):
            return f"agent refused ({exc.code}): {exc.message}"
        if isinstance(exc, EdgeInspectError):
            return exc.message
        log.exception("deploy_crashed", job_id=run.job_id, stage=run.stage)
        return f"internal error while {run.stage}: {type(exc).__name__}: {exc}"

    def _undo(self, run: _Run) -> None:
        """Leave the device as it was: unload what this job loaded, remove what it created."""
        installed = run.installed
        if installed is None:
            return
        entry = installed.entry
        in_use = self.device.state.aliases_using(entry.name, entry.version)
        if run.loaded_here and not in_use:
            self.device.unload_quietly(entry.name, entry.version)
        if installed.fresh and self.device.state.installed(entry.name, entry.version) is None:
            shutil.rmtree(entry.path, ignore_errors=True)
            log.info("version_folder_removed", path=entry.path, reason="deployment failed")
