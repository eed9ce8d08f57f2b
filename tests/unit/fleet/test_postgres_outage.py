"""A PostgreSQL restart costs the store one failed call, not the connection for good."""

from __future__ import annotations

import pytest
from edgeinspect_cloud.fleet import FleetDatabaseError, FleetStore

from tests.fixtures.postgres_server import PostgresServer


def test_the_store_reconnects_after_the_server_restarted(
    postgres_server: PostgresServer, postgres_url: str
) -> None:
    with FleetStore.open(postgres_url) as store:
        store.devices.add_to_group("line-3", ["edge-1"])
        postgres_server.restart()  # skips itself on an external server
        try:
            store.devices.groups()
        except FleetDatabaseError as exc:  # the broken connection is noticed on first use
            assert "PostgreSQL fleet database" in exc.message
        assert store.devices.groups() == {"line-3": ["edge-1"]}
        assert store.db.ping()


def test_an_unreachable_server_is_a_clear_error() -> None:
    pytest.importorskip("psycopg")
    with pytest.raises(FleetDatabaseError, match="cannot connect to the PostgreSQL fleet database"):
        FleetStore.open("postgresql://nobody@127.0.0.1:1/x?connect_timeout=1")
