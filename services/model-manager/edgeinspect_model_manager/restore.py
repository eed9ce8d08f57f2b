"""Start-up: make the agent serve what state.json says, before the manager talks to the network.

Factories lose connectivity, and a rebooted box must come back inspecting with the same models: the
aliased versions (primaries and shadows) are loaded from their folders and the aliases set, from the
local disk only. A version whose folder is gone or no longer verifies is reported (event, metric) and
skipped; the other aliases are still restored. Leftover staging folders of jobs that are not in
progress are removed, so a crash never leaks disk space.
"""

from __future__ import annotations

import shutil
import threading

from edgeinspect.core.errors import AgentError, EdgeInspectError
from edgeinspect.core.ids import is_valid
from edgeinspect.core.lifecycle import Backoff
from edgeinspect.core.observability import get_logger

from edgeinspect_model_manager.device import Device
from edgeinspect_model_manager.install import staging_for
from edgeinspect_model_manager.state import DeviceState

log = get_logger(__name__)


def wait_for_agent(device: Device, stop: threading.Event) -> bool:
    """Wait (with backoff) until the agent serves; False only when asked to stop first."""
    backoff = Backoff(initial=0.2, maximum=5.0)
    while not stop.is_set():
        try:
            device.agent.wait_ready(min(device.settings.agent_wait_s, 5.0))
            return True
        except AgentError as exc:
            log.warning("agent_not_ready", addr=device.settings.agent_addr, error=str(exc))
            stop.wait(backoff.next_delay())
    return False


def restore(device: Device, stop: threading.Event) -> int:
    """Load and alias everything state.json names; returns how many aliases could not be restored."""
    state = device.load()
    clean_staging(device, state)
    if not state.aliases:
        log.info("restore_nothing", state=str(device.settings.state_path))
        return 0
    if not wait_for_agent(device, stop):
        return len(state.aliases)
    problems = 0
    for alias, target in sorted(state.aliases.items()):
        try:
            _restore_alias(device, state, alias, target.name, target.version, target.shadow)
        except (EdgeInspectError, OSError) as exc:
            problems += 1
            device.metrics.restore_problems.inc()
            device.reporter.event(
                "restore_problem",
                "error",
                alias=alias,
                model=target.name,
                version=target.version,
                error=str(exc),
            )
            log.error(
                "restore_failed", alias=alias, model=target.name, version=target.version, error=str(exc)
            )
    log.info("restored", aliases=len(state.aliases), problems=problems)
    return problems


def _restore_alias(
    device: Device, state: DeviceState, alias: str, name: str, version: str, shadow: str
) -> None:
    primary = state.installed(name, version)
    if primary is None:
        raise EdgeInspectError(f"alias {alias!r} names {name}:{version}, which is not installed")
    device.ensure_loaded(primary)
    device.agent.set_alias(alias, name, version)
    if shadow:
        entry = state.installed(name, shadow)
        if entry is None:
            raise EdgeInspectError(f"the shadow {name}:{shadow} of alias {alias!r} is not installed")
        device.ensure_loaded(entry)
        device.agent.set_shadow(alias, shadow)
    log.info("alias_restored", alias=alias, model=name, version=version, shadow=shadow)


def clean_staging(device: Device, state: DeviceState) -> None:
    """Remove staging folders except those of jobs still in progress (their downloads resume)."""
    root = device.settings.staging_dir
    if not root.is_dir():
        return
    keep = {
        staging_for(device, r.job_id).name
        for r in state.jobs
        if r.status == "IN_PROGRESS" and is_valid("job id", r.job_id)
    }
    for folder in root.iterdir():
        if folder.name not in keep:
            shutil.rmtree(folder, ignore_errors=True)
            log.info("staging_removed", path=str(folder))


def reconcile(device: Device) -> int:
    """Re-apply aliases the agent lost (it restarted on its own); returns how many were restored.

    Cheap when all is well (one ``ListAliases``); silent while the agent is down (readiness shows it).
    """
    state = device.state
    if not state.aliases:
        return 0
    try:
        actual = {a.alias: (a.name, a.version, a.shadow_version) for a in device.agent.list_aliases()}
    except AgentError:
        return 0
    fixed = 0
    for alias, target in sorted(state.aliases.items()):
        if actual.get(alias) == (target.name, target.version, target.shadow):
            continue
        try:
            _restore_alias(device, state, alias, target.name, target.version, target.shadow)
        except (EdgeInspectError, OSError) as exc:
            log.error("reconcile_failed", alias=alias, error=str(exc))
            continue
        fixed += 1
        device.reporter.event(
            "alias_restored",
            "warning",
            alias=alias,
            model=target.name,
            version=target.version,
            reason="the agent no longer served it",
        )
    if fixed:
        device.publish_state()
    return fixed
