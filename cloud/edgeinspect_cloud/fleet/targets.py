"""Turning a job's targets (thing groups and things) into the things that get an execution.

A target is ``group:NAME``, ``thing:NAME`` or a bare ``NAME``: a bare name is a group when a group of
that name has members, else a thing the registry knows. A thing that never connected must be named
explicitly (``thing:edge-9``), so a typo in a line's name fails instead of creating a job for a device
that does not exist. Group membership is read when the job is created (AWS's snapshot jobs).
"""

from __future__ import annotations

from collections.abc import Sequence

from edgeinspect_cloud.fleet.db import Transaction
from edgeinspect_cloud.fleet.devices import DeviceRegistry
from edgeinspect_cloud.fleet.errors import FleetError
from edgeinspect_cloud.fleet.records import check_group, check_thing


def resolve_targets(tx: Transaction, devices: DeviceRegistry, targets: Sequence[str]) -> list[str]:
    """The distinct things named by ``targets``, in target order then name order."""
    if not targets:
        raise FleetError(
            "a job needs at least one target", hint="pass --target with a thing group or a thing"
        )
    things: list[str] = []
    for target in targets:
        for thing in _resolve_one(tx, devices, target):
            if thing not in things:
                things.append(thing)
    if not things:
        raise FleetError(
            f"the targets {', '.join(targets)} contain no things",
            hint="add things to the group first: edgeinspect fleet groups add GROUP THING...",
        )
    return things


def _resolve_one(tx: Transaction, devices: DeviceRegistry, target: str) -> list[str]:
    kind, _, name = target.partition(":") if target.startswith(("group:", "thing:")) else ("", "", target)
    if kind == "group":
        members = devices.members(tx, check_group(name))
        if not members:
            raise FleetError(f"thing group {name!r} has no things", hint="edgeinspect fleet groups add ...")
        return members
    if kind == "thing":
        check_thing(name)
        devices._ensure_thing(tx, name)
        return [name]
    members = devices.members(tx, check_group(name))
    if members:
        return members
    if devices.is_known(tx, name):
        return [name]
    raise FleetError(
        f"target {name!r} is neither a thing group with things nor a known thing",
        hint=f"check the name (edgeinspect devices list / fleet groups list), or use thing:{name} "
        "for a device that has not connected yet",
    )
