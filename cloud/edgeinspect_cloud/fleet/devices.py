"""The device registry: thing groups, and what the service heard from each thing (last seen, state).

Membership comes from three places, each recorded with its ``source``: the CLI (``edgeinspect devices
add``, ``fleet groups add``), the service's ``EI_FLEET_GROUPS`` setting, and the device itself (the
``groups`` list in its retained ``{root}/{thing}/state``), so a box configured with
``EI_THING_GROUPS=line-3`` joins line 3 the first time it reports.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from typing import Any

from edgeinspect_cloud.fleet.db import Database, Transaction
from edgeinspect_cloud.fleet.records import GROUP_PATTERN, Device, check_group, check_thing

_ADD_MEMBER = (
    "INSERT INTO fleet_group_members (group_name, thing, source, added_at) VALUES (?, ?, ?, ?)"
    " ON CONFLICT (group_name, thing) DO NOTHING"
)


class DeviceRegistry:
    """Thing groups and devices, over the fleet database."""

    def __init__(self, db: Database) -> None:
        self.db = db

    # ---- groups ------------------------------------------------------------------------------

    def add_to_group(self, group: str, things: Iterable[str], source: str = "cli") -> list[str]:
        """Add things to a group (creating it); returns the things that were not members yet."""
        check_group(group)
        added = []
        now = time.time()
        with self.db.transaction() as tx:
            for thing in things:
                check_thing(thing)
                self._ensure_thing(tx, thing)
                changed = tx.execute(
                    _ADD_MEMBER,
                    (group, thing, source, now),
                )
                if changed:
                    added.append(thing)
        return added

    def remove_from_group(self, group: str, things: Iterable[str]) -> list[str]:
        """Remove things from a group; returns those that were members."""
        removed = []
        with self.db.transaction() as tx:
            for thing in things:
                if tx.execute(
                    "DELETE FROM fleet_group_members WHERE group_name = ? AND thing = ?", (group, thing)
                ):
                    removed.append(thing)
        return removed

    def groups(self) -> dict[str, list[str]]:
        """Every group and its things, both sorted."""
        with self.db.transaction() as tx:
            rows = tx.query("SELECT group_name, thing FROM fleet_group_members ORDER BY group_name, thing")
        out: dict[str, list[str]] = {}
        for row in rows:
            out.setdefault(row["group_name"], []).append(row["thing"])
        return out

    def members(self, tx: Transaction, group: str) -> list[str]:
        """The things of ``group``, sorted (empty for an unknown group)."""
        rows = tx.query("SELECT thing FROM fleet_group_members WHERE group_name = ? ORDER BY thing", (group,))
        return [row["thing"] for row in rows]

    # ---- devices -----------------------------------------------------------------------------

    def add_thing(self, thing: str) -> bool:
        """Register a thing before it ever connects; False when it was known already."""
        check_thing(thing)
        with self.db.transaction() as tx:
            return self._ensure_thing(tx, thing)

    def is_known(self, tx: Transaction, thing: str) -> bool:
        return tx.one("SELECT thing FROM fleet_things WHERE thing = ?", (thing,)) is not None

    def seen(self, thing: str, at: float | None = None) -> None:
        """The thing just talked to us (a jobs request): update its last-seen time."""
        self.seen_many({thing: time.time() if at is None else at})

    def seen_many(self, seen: Mapping[str, float]) -> None:
        """Last-seen times of many things in one transaction (the service batches them per poll)."""
        if not seen:
            return
        with self.db.transaction() as tx:
            for thing, now in seen.items():
                self._ensure_thing(tx, thing)
                tx.execute(
                    "UPDATE fleet_things SET last_seen = ?, first_seen = COALESCE(first_seen, ?)"
                    " WHERE thing = ?",
                    (now, now, thing),
                )

    def record_state(self, thing: str, state: dict[str, Any] | None, at: float | None = None) -> None:
        """Keep the device's retained state (None: it was cleared) and join the groups it reports."""
        self.record_states({thing: (state, time.time() if at is None else at)})

    def record_states(self, states: Mapping[str, tuple[dict[str, Any] | None, float]]) -> None:
        """Many devices' latest state documents in one transaction (the service batches them per poll)."""
        if not states:
            return
        with self.db.transaction() as tx:
            for thing, (state, now) in states.items():
                self._record_state(tx, thing, state, now)

    def _record_state(self, tx: Transaction, thing: str, state: dict[str, Any] | None, now: float) -> None:
        groups = [g for g in (state or {}).get("groups") or [] if isinstance(g, str)]
        self._ensure_thing(tx, thing)
        tx.execute(
            "UPDATE fleet_things SET state = ?, state_at = ?, last_seen = ?,"
            " first_seen = COALESCE(first_seen, ?) WHERE thing = ?",
            (None if state is None else json.dumps(state), now, now, now, thing),
        )
        for group in groups:
            if GROUP_PATTERN.match(group):
                tx.execute(_ADD_MEMBER, (group, thing, "device", now))

    def devices(self, group: str | None = None) -> list[Device]:
        """Every known device (or those of one group), sorted by thing name."""
        with self.db.transaction() as tx:
            rows = tx.query("SELECT * FROM fleet_things ORDER BY thing")
            memberships = tx.query("SELECT group_name, thing FROM fleet_group_members ORDER BY group_name")
        groups: dict[str, list[str]] = {}
        for row in memberships:
            groups.setdefault(row["thing"], []).append(row["group_name"])
        out = [_device(row, groups.get(row["thing"], [])) for row in rows]
        return [d for d in out if group is None or group in d.groups]

    def device(self, thing: str) -> Device | None:
        """One device, or None when the registry never heard of it."""
        return next((d for d in self.devices() if d.thing == thing), None)

    @staticmethod
    def _ensure_thing(tx: Transaction, thing: str) -> bool:
        return bool(
            tx.execute("INSERT INTO fleet_things (thing) VALUES (?) ON CONFLICT (thing) DO NOTHING", (thing,))
        )


def _device(row: dict[str, Any], groups: list[str]) -> Device:
    state = json.loads(row["state"]) if row["state"] else None
    return Device(
        thing=row["thing"],
        groups=groups,
        first_seen=row["first_seen"],
        last_seen=row["last_seen"],
        state=state if isinstance(state, dict) else None,
        state_at=row["state_at"],
    )
