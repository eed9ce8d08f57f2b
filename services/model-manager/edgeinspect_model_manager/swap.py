"""The last stages of a deployment: move the alias (or attach a shadow), watch, then finish or roll back.

The alias move is the agent's one atomic ``SetAlias``; it is persisted together with a ``watch``
record naming the previous target, so a restart during the watch resumes it (and can still roll back).
On a breach the alias moves back to the previous target, the bad version is unloaded and deleted after
the grace period, and the job fails with ``rolled back: <why>``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from edgeinspect.core.observability import get_logger
from edgeinspect.core.package import Manifest

from edgeinspect_model_manager.device import Device
from edgeinspect_model_manager.errors import DeployError
from edgeinspect_model_manager.jobdoc import DeployModel
from edgeinspect_model_manager.jobs import JobGoneError
from edgeinspect_model_manager.outcome import Outcome
from edgeinspect_model_manager.policy import Limits
from edgeinspect_model_manager.retention import Retention
from edgeinspect_model_manager.smoke import smoke_test
from edgeinspect_model_manager.state import AliasState, InstalledVersion, PreviousTarget, Watch
from edgeinspect_model_manager.watch import WatchPlan, watch

log = get_logger(__name__)
StageFn = Callable[..., None]


class Swapper:
    """Alias moves, shadows, probation and rollback for one job."""

    def __init__(self, device: Device, retention: Retention, stop: threading.Event, stage: StageFn) -> None:
        self.device = device
        self.settings = device.settings
        self.retention = retention
        self.stop = stop
        self.stage = stage

    def attach_shadow(self, op: DeployModel, alias: str) -> Outcome:
        self.stage("attaching_shadow", alias=alias)
        target = self.device.state.aliases.get(alias)
        if target is None or target.name != op.name:
            serving = f"{target.name}:{target.version}" if target else "nothing"
            raise DeployError(
                f"cannot attach {op.ref} as shadow of {alias!r}: the alias serves {serving}",
                hint="a shadow must be another version of the model its alias serves; deploy a primary first",
            )
        if target.version == op.version:
            raise DeployError(
                f"{op.ref} is already the primary of {alias!r}; a shadow must be another version"
            )
        old_shadow = target.shadow
        info = self.device.agent.set_shadow(alias, op.version)
        with self.device.change() as state:
            state.aliases[alias].shadow = info.shadow_version
        self.device.reporter.event("shadow_set", alias=alias, model=op.name, version=op.version)
        if old_shadow and old_shadow != op.version:
            self.retention.unload_later(op.name, old_shadow)
        return Outcome.succeeded(alias=alias, role="shadow", model=op.name, version=op.version)

    def swap(self, job_id: str, op: DeployModel, alias: str, manifest: Manifest) -> Outcome:
        current = self.device.state.aliases.get(alias)
        if current is not None and (current.name, current.version) == (op.name, op.version):
            return Outcome.succeeded(alias=alias, model=op.name, version=op.version, note="already serving")
        previous = PreviousTarget(name=current.name, version=current.version) if current else None
        self.stage("swapping", alias=alias)
        info = self.device.agent.set_alias(alias, op.name, op.version)
        with self.device.change() as state:
            state.aliases[alias] = AliasState(
                name=info.name, version=info.version, shadow=info.shadow_version
            )
            state.watch = self._watch_record(job_id, alias, op, previous, op.rollback_on_failure)
        before = f"{previous.name}:{previous.version}" if previous else ""
        self.device.reporter.event("swap", alias=alias, model=op.name, version=op.version, previous=before)
        log.info("alias_swapped", alias=alias, model=op.name, version=op.version, previous=before)
        installed = self.device.state.installed(op.name, op.version)
        assert installed is not None
        return self.finish(job_id, alias, installed, manifest, previous, op.rollback_on_failure)

    def _watch_record(
        self, job_id: str, alias: str, op: DeployModel, previous: PreviousTarget | None, rollback: bool
    ) -> Watch | None:
        if not rollback or self.settings.rollback_window_s <= 0:
            return None
        return Watch(job_id=job_id, alias=alias, name=op.name, version=op.version, previous=previous)

    def resume(self, pending: Watch, manifest: Manifest) -> Outcome:
        """Finish a watch a restart interrupted (the alias already points at the new version)."""
        installed = self.device.state.installed(pending.name, pending.version)
        assert installed is not None
        if pending.previous is not None:
            before = self.device.state.installed(pending.previous.name, pending.previous.version)
            if before is not None:
                self.device.ensure_loaded(before)  # restore loads only aliased versions
        return self.finish(pending.job_id, pending.alias, installed, manifest, pending.previous, True)

    def finish(
        self,
        job_id: str,
        alias: str,
        installed: InstalledVersion,
        manifest: Manifest,
        previous: PreviousTarget | None,
        rollback: bool,
    ) -> Outcome:
        verdict = None
        if rollback and self.settings.rollback_window_s > 0:
            self._report_after_swap("watching", alias=alias, window_s=f"{self.settings.rollback_window_s:g}")
            self.device.publish_state("watching")
            verdict = watch(
                self.device.agent, self._plan(installed), self._smoke(installed, manifest), self.stop
            )
        if verdict is not None:
            return self._roll_back(alias, installed, previous, verdict)
        with self.device.change() as state:
            state.watch = None
        if previous is not None and not self.device.state.aliases_using(previous.name, previous.version):
            self.retention.unload_later(previous.name, previous.version)
        self.retention.prune(installed.name)
        details = {"alias": alias, "model": installed.name, "version": installed.version}
        if previous is not None:
            details["previous"] = f"{previous.name}:{previous.version}"
        return Outcome.succeeded(**details)

    def _report_after_swap(self, stage: str, **details: str) -> None:
        """Once the alias has moved, the device finishes what it started even if the cloud lost interest
        (a job canceled mid-watch): the watch and a rollback keep the device consistent either way."""
        try:
            self.stage(stage, **details)
        except JobGoneError as exc:
            log.warning("job_gone_after_swap", stage=stage, error=str(exc))

    def _plan(self, installed: InstalledVersion) -> WatchPlan:
        limits = Limits(
            max_error_rate=self.settings.rollback_max_error_rate,
            max_p99_ms=self.settings.rollback_max_p99_ms,
            min_requests=self.settings.rollback_min_requests,
        )
        return WatchPlan(
            installed.name,
            installed.version,
            self.settings.rollback_window_s,
            self.settings.watch_interval_s,
            limits,
        )

    def _smoke(self, installed: InstalledVersion, manifest: Manifest) -> Callable[[], None] | None:
        if not self.settings.rollback_smoke_rerun:
            return None
        folder = Path(installed.path)

        def rerun() -> None:
            smoke_test(
                self.device.agent,
                folder,
                manifest,
                installed.ref,
                self.settings.smoke_rtol,
                self.settings.smoke_atol,
            )

        return rerun

    def _roll_back(
        self, alias: str, bad: InstalledVersion, previous: PreviousTarget | None, why: str
    ) -> Outcome:
        self.device.metrics.rollbacks.inc()
        if previous is None:
            with self.device.change() as state:
                state.watch = None
            reason = f"{why}; there is no previous version to roll back to, so {bad.ref} keeps serving"
            self.device.reporter.event(
                "rollback_impossible", "error", alias=alias, model=bad.name, version=bad.version, reason=why
            )
            return Outcome.failed(reason, stage="watching", alias=alias)
        self._report_after_swap("rolling_back", alias=alias, reason=why)
        before = self.device.state.installed(previous.name, previous.version)
        if before is not None:
            self.device.ensure_loaded(before)
        info = self.device.agent.set_alias(alias, previous.name, previous.version)
        with self.device.change() as state:
            state.aliases[alias] = AliasState(
                name=info.name, version=info.version, shadow=info.shadow_version
            )
            state.watch = None
        back = f"{previous.name}:{previous.version}"
        self.device.reporter.event(
            "model_rolled_back",
            "warning",
            alias=alias,
            model=bad.name,
            version=bad.version,
            restored=back,
            reason=why,
        )
        log.warning("rolled_back", alias=alias, bad=bad.ref, restored=back, reason=why)
        self._delete_later(bad)
        return Outcome.failed(
            f"rolled back: {why}; {alias} serves {back} again",
            stage="rolled_back",
            alias=alias,
            restored=back,
        )

    def _delete_later(self, bad: InstalledVersion) -> None:
        """The bad version leaves memory and disk after the grace period (unless an alias took it)."""

        def task() -> None:
            with self.device.lock:
                if not self.device.state.aliases_using(bad.name, bad.version):
                    self.device.delete_version(bad.name, bad.version)
            self.device.publish_state()

        self.retention.janitor.schedule(self.settings.unload_grace_s, f"delete {bad.ref}", task)
