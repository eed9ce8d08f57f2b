"""Which versions stay on disk and in the agent: trimming to ``EI_MAX_VERSIONS``, delayed unloads, and
the ``remove_model`` job.

A version an alias uses (as primary or shadow) is never unloaded or deleted here. Versions replaced by
a swap stay on disk (a later deploy of them needs no download) but leave the agent's memory after the
grace period; the oldest ones, by version order, are deleted once a model has more than N.
"""

from __future__ import annotations

from edgeinspect.core.errors import AgentError
from edgeinspect.core.observability import get_logger

from edgeinspect_model_manager.device import Device
from edgeinspect_model_manager.janitor import Janitor
from edgeinspect_model_manager.jobdoc import RemoveModel
from edgeinspect_model_manager.outcome import Outcome
from edgeinspect_model_manager.policy import versions_to_delete

log = get_logger(__name__)


class Retention:
    """Trims versions of a model and runs the unloads the janitor was asked to do later."""

    def __init__(self, device: Device, janitor: Janitor) -> None:
        self.device = device
        self.janitor = janitor
        self._unloading: set[str] = set()

    def prune(self, name: str) -> list[str]:
        """Delete the oldest unused versions of ``name`` beyond ``EI_MAX_VERSIONS``; returns them."""
        with self.device.lock:
            state = self.device.state
            installed = [v.version for v in state.versions_of(name)]
            protected = {v for v in installed if state.aliases_using(name, v)}
            protected |= {v for v in installed if f"{name}:{v}" in self._unloading}
            doomed = versions_to_delete(installed, protected, self.device.settings.max_versions)
            for version in doomed:
                self.device.delete_version(name, version)
        if doomed:
            log.info("versions_trimmed", model=name, deleted=doomed)
        return doomed

    def unload_later(self, name: str, version: str) -> None:
        """After the grace period: unload ``name:version`` if no alias took it back, then trim."""
        ref = f"{name}:{version}"
        with self.device.lock:
            self._unloading.add(ref)

        def task() -> None:
            with self.device.lock:
                self._unloading.discard(ref)
                if not self.device.state.aliases_using(name, version):
                    self.device.unload_quietly(name, version)
                self.prune(name)
            self.device.publish_state()

        self.janitor.schedule(self.device.settings.unload_grace_s, f"unload {ref}", task)

    def remove(self, op: RemoveModel) -> Outcome:
        """The ``remove_model`` job: all or nothing; a version serving as a primary is refused."""
        with self.device.lock:
            state = self.device.state
            versions = [op.version] if op.version else [v.version for v in state.versions_of(op.name)]
            for version in versions:
                for alias in state.aliases_using(op.name, version):
                    if state.aliases[alias].version == version:
                        return Outcome.failed(
                            f"{op.name}:{version} serves alias {alias!r}; deploy another version to it first",
                            stage="removing",
                        )
            removed = []
            for version in versions:
                self._detach_shadows(op.name, version)
                if self.device.state.installed(op.name, version) is None:
                    self._unload_stray(op.name, version)
                    continue
                self.device.delete_version(op.name, version)
                removed.append(version)
        note = f"removed {', '.join(removed)}" if removed else "nothing to remove"
        return Outcome.succeeded(model=op.name, note=note)

    def _detach_shadows(self, name: str, version: str) -> None:
        for alias, target in list(self.device.state.aliases.items()):
            if target.name == name and target.shadow == version:
                self.device.agent.set_shadow(alias, "")
                with self.device.change() as draft:
                    draft.aliases[alias].shadow = ""
                self.device.reporter.event("shadow_set", alias=alias, model=name, version="")

    def _unload_stray(self, name: str, version: str) -> None:
        """A version loaded in the agent but unknown to this device's state (loaded by hand)."""
        try:
            self.device.agent.unload_version(name, version)
        except AgentError as exc:
            if exc.code != "NOT_FOUND":
                raise
