"""The outbox of ``notify-next`` messages: rows written in the same transaction as the change itself.

Why an outbox: jobs are created and canceled by the CLI, in another process, possibly while the service
is down. Writing "thing X's next job may have changed" next to the change means nothing is lost: the
service reads the rows, publishes, and only then deletes exactly the rows it read. (Not a cursor over
ids: PostgreSQL may commit id 5 after id 6, and a cursor at 6 would skip it.)
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from edgeinspect_cloud.fleet.db import Database, Transaction


def notify(tx: Transaction, thing: str) -> None:
    """Record that ``thing``'s next pending execution may have changed (inside the caller's transaction)."""
    tx.execute("INSERT INTO fleet_notifications (thing, created_at) VALUES (?, ?)", (thing, time.time()))


@dataclass(frozen=True)
class Batch:
    """Notification rows read together: the distinct things (oldest first) and the row ids to delete."""

    things: list[str]
    ids: list[int]


class Outbox:
    """Reads and acknowledges notifications for the one service instance that publishes them."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def pending(self, limit: int = 1000) -> Batch:
        """Up to ``limit`` notification rows, oldest first."""
        with self.db.transaction() as tx:
            rows = tx.query("SELECT id, thing FROM fleet_notifications ORDER BY id LIMIT ?", (limit,))
        things: list[str] = []
        for row in rows:
            if row["thing"] not in things:
                things.append(row["thing"])
        return Batch(things, [int(row["id"]) for row in rows])

    def ack(self, ids: list[int]) -> None:
        """These rows were published: delete them."""
        if not ids:
            return
        with self.db.transaction() as tx:
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                marks = ", ".join("?" for _ in chunk)
                tx.execute(f"DELETE FROM fleet_notifications WHERE id IN ({marks})", chunk)
