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


def test_start_next_waiting_on_a_cancel_does_not_hand_out_the_canceled_execution(postgres_url: str) -> None:
    """start-next blocks on the job's row lock while the CLI cancels; it must then see the cancel."""
    import threading

    import psycopg
    from edgeinspect.core.lifecycle import wait_until

    with FleetStore.open(postgres_url) as cli_side, FleetStore.open(postgres_url) as service_side:
        cli_side.devices.add_to_group("line-3", ["edge-1"])
        cli_side.jobs.create_job("j1", {"operation": "remove_model"}, ["line-3"])
        got: list[object] = []
        with cli_side.db.transaction():
            cli_side.jobs.cancel_job("j1")  # joins the open transaction: the job row stays locked
            waiter = threading.Thread(target=lambda: got.append(service_side.jobs.start_next("edge-1")))
            waiter.start()
            with psycopg.connect(postgres_url, autocommit=True) as probe:
                blocked = "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                assert wait_until(lambda: probe.execute(blocked).fetchone()[0] >= 1, 10)  # type: ignore[index]
        waiter.join(timeout=10)
        assert got == [None]
        assert [e.status for e in cli_side.jobs.executions("j1")] == ["CANCELED"]
