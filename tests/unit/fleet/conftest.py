"""Every store test runs twice: on an SQLite file and on a fresh PostgreSQL database (real server)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from edgeinspect_cloud.fleet import FleetStore


@pytest.fixture(params=["sqlite", "postgresql"])
def fleet_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fleet database URL of each kind."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'fleet.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def store(fleet_db_url: str) -> Iterator[FleetStore]:
    """An open store with the schema created."""
    opened = FleetStore.open(fleet_db_url)
    try:
        yield opened
    finally:
        opened.close()
