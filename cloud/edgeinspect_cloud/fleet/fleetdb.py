"""The fleet store as one object: the database, its schema, devices, jobs and the notify outbox.

Both the CLI and ``fleet serve`` open it from the same URL (``EI_FLEET_DB`` / ``--fleet-db``); the
schema is created on first open.
"""

from __future__ import annotations

from types import TracebackType

from edgeinspect_cloud.fleet.db import Database, describe, open_database
from edgeinspect_cloud.fleet.devices import DeviceRegistry
from edgeinspect_cloud.fleet.outbox import Outbox
from edgeinspect_cloud.fleet.schema import ensure_schema
from edgeinspect_cloud.fleet.store import JobStore


class FleetStore:
    """``devices`` (things and groups), ``jobs`` (jobs and executions) and ``outbox`` over one database."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.devices = DeviceRegistry(db)
        self.jobs = JobStore(db, self.devices)
        self.outbox = Outbox(db)

    @classmethod
    def open(cls, url: str) -> FleetStore:
        """Open ``sqlite:///path`` or ``postgresql://...`` and create the tables if needed."""
        db = open_database(url)
        try:
            ensure_schema(db)
        except BaseException:
            db.close()
            raise
        return cls(db)

    @property
    def url(self) -> str:
        """The database URL without its password."""
        return describe(self.db.url)

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> FleetStore:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
