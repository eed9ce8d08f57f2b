"""Settings parsing, database URLs, payload checks and table formatting."""

from __future__ import annotations

import pytest
from edgeinspect.core.errors import ConfigError
from edgeinspect_cloud.fleet import FleetDatabaseError, JobsRequestRejected
from edgeinspect_cloud.fleet.db import describe, open_database
from edgeinspect_cloud.fleet.deploy import new_job_id
from edgeinspect_cloud.fleet.protocol import check_status_details, notify_next_payload
from edgeinspect_cloud.fleet.records import JOB_ID_PATTERN
from edgeinspect_cloud.fleet.settings import FleetSettings, parse_groups
from edgeinspect_cloud.fleet.views import ago, table


def test_groups_setting_is_parsed_and_bad_names_name_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    assert parse_groups("line-3=edge-1, edge-2;line-4=edge-3;") == {
        "line-3": ["edge-1", "edge-2"],
        "line-4": ["edge-3"],
    }
    monkeypatch.setenv("EI_FLEET_GROUPS", "line-3=edge 1")
    with pytest.raises(ConfigError, match="EI_FLEET_GROUPS"):
        FleetSettings.load()
    monkeypatch.setenv("EI_FLEET_GROUPS", "line-3=edge-1")
    monkeypatch.setenv("EI_MQTT_CERT_FILE", "/x.pem")
    with pytest.raises(ConfigError, match="EI_MQTT_KEY_FILE"):
        FleetSettings.load()


def test_database_urls() -> None:
    with pytest.raises(FleetDatabaseError, match="unsupported"):
        open_database("mysql://x")
    with pytest.raises(FleetDatabaseError, match="no file"):
        open_database("sqlite://")
    assert describe("postgresql://u:secret@h/db") == "postgresql://u:***@h/db"
    memory = open_database("sqlite:///:memory:")
    assert memory.ping()
    memory.close()


@pytest.mark.parametrize(
    "details",
    [{"k": 1}, {"bad key": "v"}, {"k": ""}, {"k": "x" * 1025}, {f"k{i}": "v" for i in range(11)}, ["a"]],
)
def test_status_details_beyond_aws_limits_are_invalid_requests(details: object) -> None:
    with pytest.raises(JobsRequestRejected) as refused:
        check_status_details(details)
    assert refused.value.code == "InvalidRequest"


def test_notify_next_without_a_pending_job_carries_only_a_timestamp() -> None:
    assert set(notify_next_payload(None, None)) == {"timestamp"}


def test_generated_job_ids_are_valid_aws_job_ids() -> None:
    job_id = new_job_id("a.very/long model name with spaces", 12, now=0)
    assert JOB_ID_PATTERN.match(job_id), job_id
    assert job_id.startswith("deploy-a-very-long-model-name-w-12-19700101T000000-")


def test_tables_and_ages() -> None:
    assert table(("A", "LONGER"), [("xx", "y")]) == "A   LONGER\nxx  y"
    assert (ago(None), ago(100, now=105), ago(0, now=7200)) == ("never", "5s ago", "2h ago")
