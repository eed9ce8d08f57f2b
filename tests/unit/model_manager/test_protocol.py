"""AWS IoT Jobs payloads: field names, statusDetails limits, execution and rejection parsing."""

from __future__ import annotations

import pytest
from edgeinspect.core.errors import MessageError
from edgeinspect_model_manager.protocol import (
    PendingExecution,
    new_client_token,
    parse_execution,
    parse_pending,
    parse_rejection,
    parse_update_accepted,
    start_next_request,
    status_details,
    update_request,
)


def test_update_request_uses_the_aws_field_names() -> None:
    payload = update_request(
        "IN_PROGRESS", {"stage": "downloading"}, "tok", expected_version=3, execution_number=1
    )
    assert payload == {
        "status": "IN_PROGRESS",
        "statusDetails": {"stage": "downloading"},
        "includeJobExecutionState": True,
        "clientToken": "tok",
        "expectedVersion": 3,
        "executionNumber": 1,
    }


def test_update_request_leaves_out_unknown_versions() -> None:
    payload = update_request("FAILED", {}, "tok")
    assert "expectedVersion" not in payload and "executionNumber" not in payload


def test_start_next_request_carries_the_client_token() -> None:
    assert start_next_request("tok") == {"clientToken": "tok"}
    assert start_next_request("tok", {"device": "up"})["statusDetails"] == {"device": "up"}


def test_client_tokens_are_unique_and_short_enough_for_aws() -> None:
    tokens = {new_client_token("a-very-long-thing-name-" * 5) for _ in range(100)}
    assert len(tokens) == 100 and all(len(t) <= 64 for t in tokens)


def test_status_details_are_strings_within_aws_limits() -> None:
    details = status_details(reason="x" * 5000, stage="smoke_testing", size=12, empty="", missing=None)
    assert details["stage"] == "smoke_testing" and details["size"] == "12"
    assert len(details["reason"]) == 1024 and details["reason"].endswith("...")
    assert "empty" not in details and "missing" not in details


def test_status_details_strip_control_characters() -> None:
    assert status_details(reason="line one\nline two\t!") == {"reason": "line one line two !"}


def test_status_details_hold_at_most_ten_entries() -> None:
    assert len(status_details(**{f"k{i}": "v" for i in range(15)})) == 10


def test_an_invalid_detail_key_is_refused() -> None:
    with pytest.raises(MessageError):
        status_details(**{"bad key": "v"})


def test_start_next_accepted_execution_is_parsed() -> None:
    execution = parse_execution(
        {
            "clientToken": "tok",
            "timestamp": 1,
            "execution": {
                "jobId": "deploy-1",
                "thingName": "press-7",
                "status": "IN_PROGRESS",
                "jobDocument": {"operation": "remove_model", "model": {"name": "m"}},
                "versionNumber": 2,
                "executionNumber": 1,
                "statusDetails": {"stage": "queued"},
                "queuedAt": 1,
                "startedAt": 2,
                "lastUpdatedAt": 2,
            },
        }
    )
    assert execution is not None
    assert (execution.job_id, execution.status, execution.version_number, execution.execution_number) == (
        "deploy-1", "IN_PROGRESS", 2, 1,
    )  # fmt: skip
    assert execution.document == {"operation": "remove_model", "model": {"name": "m"}}
    assert execution.status_details == {"stage": "queued"}


def test_no_execution_means_nothing_is_pending() -> None:
    assert parse_execution({"timestamp": 1, "clientToken": "tok"}) is None


def test_an_execution_without_job_id_is_refused() -> None:
    with pytest.raises(MessageError, match="jobId"):
        parse_execution({"execution": {"status": "QUEUED"}})


def test_update_accepted_gives_the_new_version() -> None:
    assert parse_update_accepted({"executionState": {"status": "IN_PROGRESS", "versionNumber": 4}}) == 4
    assert parse_update_accepted({"timestamp": 1}) is None


def test_rejections_say_whether_the_job_is_gone() -> None:
    mismatch = parse_rejection(
        {
            "code": "VersionMismatch",
            "message": "m",
            "executionState": {"status": "IN_PROGRESS", "versionNumber": 5},
        }
    )
    assert (mismatch.code, mismatch.version_number, mismatch.job_gone) == ("VersionMismatch", 5, False)
    canceled = parse_rejection({"code": "InvalidStateTransition", "executionState": {"status": "CANCELED"}})
    assert canceled.job_gone
    assert parse_rejection({"code": "TerminalStateReached"}).job_gone
    assert not parse_rejection({"code": "InvalidJson"}).job_gone


def test_pending_executions_in_progress_first_and_entries_without_a_job_id_skipped() -> None:
    payload = {
        "queuedJobs": [{"jobId": "q1", "versionNumber": 1, "executionNumber": 7}, {"jobId": 5}],
        "inProgressJobs": [{"jobId": "p1", "versionNumber": "3", "executionNumber": 2}, "junk", {}],
    }
    assert parse_pending(payload) == [
        PendingExecution("p1", "IN_PROGRESS", 3, 2),
        PendingExecution("q1", "QUEUED", 1, 7),
    ]
    assert parse_pending({"inProgressJobs": "not a list"}) == []
