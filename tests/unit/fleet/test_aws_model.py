"""Our jobs protocol against AWS's own API model, as botocore ships it (no network, no credentials).

The device's requests and the fleet service's replies use AWS IoT Jobs' field names; these tests
hold them to the ``iot-jobs-data`` model (the data plane behind the MQTT API: StartNextPendingJob-
Execution, UpdateJobExecution, ...), and the ``CreateJob`` request built by
:mod:`edgeinspect_cloud.fleet.aws` to the ``iot`` control-plane model, so a fleet can move to AWS IoT
Jobs with the same devices and the same job documents. Fields only the MQTT binding has
(``clientToken``, ``timestamp``) are the documented exceptions.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.exceptions import ParamValidationError
from botocore.model import ServiceModel, Shape
from botocore.session import get_session
from botocore.validate import validate_parameters
from edgeinspect.core.errors import MessageError
from edgeinspect_cloud.fleet import FleetError, Rollout
from edgeinspect_cloud.fleet.aws import create_job_request, rollout_config
from edgeinspect_cloud.fleet.protocol import execution_json, state_json, summary_json
from edgeinspect_cloud.fleet.records import DEVICE_SETTABLE, PENDING, SCHEDULED, TERMINAL, Execution
from edgeinspect_model_manager import protocol

MQTT_ONLY = {"clientToken", "timestamp"}
DOC = {
    "operation": "deploy_model",
    "model": {"name": "defect-cls", "version": "7", "url": "s3://models/defect-cls/7.tar.gz",
              "sha256": "ab" * 32, "size": 48213},
    "role": "primary",
    "rollback_on_failure": True,
}  # fmt: skip


@pytest.fixture(scope="module")
def jobs_data() -> ServiceModel:
    return get_session().get_service_model("iot-jobs-data")


@pytest.fixture(scope="module")
def iot() -> ServiceModel:
    return get_session().get_service_model("iot")


def _input(model: ServiceModel, operation: str) -> Shape:
    return model.operation_model(operation).input_shape


def _members(shape: Shape) -> set[str]:
    return set(shape.members)  # type: ignore[attr-defined]


def _without_mqtt_fields(payload: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in payload.items() if k not in MQTT_ONLY}


EXECUTION = Execution(
    job_id="deploy-7", thing="press-7", wave=0, status="IN_PROGRESS", status_details={"stage": "loading"},
    version_number=3, execution_number=1, queued_at=1767225500.0, started_at=1767225600.0,
    updated_at=1767225601.0,
)  # fmt: skip


def test_the_devices_start_next_is_a_valid_start_next_pending_job_execution(jobs_data: ServiceModel) -> None:
    payload = protocol.start_next_request("press-7-token", {"stage": "waking"})
    assert set(payload) - MQTT_ONLY <= _members(_input(jobs_data, "StartNextPendingJobExecution"))
    validate_parameters(
        {"thingName": "press-7", **_without_mqtt_fields(payload)},
        _input(jobs_data, "StartNextPendingJobExecution"),
    )


@pytest.mark.parametrize("status", sorted(DEVICE_SETTABLE - {"REJECTED"}))
def test_the_devices_updates_are_valid_update_job_executions(jobs_data: ServiceModel, status: str) -> None:
    details = protocol.status_details(
        stage="smoke_testing", model="defect-cls", version="7", reason="x" * 2000
    )
    payload = protocol.update_request(status, details, "tok", expected_version=3, execution_number=1)  # type: ignore[arg-type]
    shape = _input(jobs_data, "UpdateJobExecution")
    assert set(payload) - MQTT_ONLY <= _members(shape)
    validate_parameters({"jobId": "deploy-7", "thingName": "press-7", **_without_mqtt_fields(payload)}, shape)


def test_the_model_refuses_what_the_device_never_sends(jobs_data: ServiceModel) -> None:
    """The checks above have teeth: a non-string detail or an empty one is refused by AWS's model."""
    shape = _input(jobs_data, "UpdateJobExecution")
    for details in ({"stage": 3}, {"stage": ""}):
        with pytest.raises(ParamValidationError):
            validate_parameters(
                {"jobId": "j", "thingName": "t", "status": "FAILED", "statusDetails": details}, shape
            )


def test_status_details_keys_follow_awss_pattern(jobs_data: ServiceModel) -> None:
    details = _input(jobs_data, "UpdateJobExecution").members["statusDetails"]  # type: ignore[attr-defined]
    assert details.key.metadata["max"] == 128 and details.key.metadata["pattern"] == "[a-zA-Z0-9:_-]+"
    assert protocol.status_details(**{"a:b_c-d": "ok"}) == {"a:b_c-d": "ok"}
    with pytest.raises(MessageError):
        protocol.status_details(**{"bad key": "x"})


def test_the_services_replies_use_only_awss_fields(jobs_data: ServiceModel) -> None:
    assert set(execution_json(EXECUTION, DOC)) <= _members(jobs_data.shape_for("JobExecution"))
    assert set(state_json(EXECUTION)) <= _members(jobs_data.shape_for("JobExecutionState"))
    assert set(summary_json(EXECUTION)) <= _members(jobs_data.shape_for("JobExecutionSummary"))
    outputs = {
        "StartNextPendingJobExecution": {"execution"},
        "UpdateJobExecution": {"executionState", "jobDocument"},
        "GetPendingJobExecutions": {"inProgressJobs", "queuedJobs"},
        "DescribeJobExecution": {"execution"},
    }
    for operation, keys in outputs.items():
        assert keys <= _members(jobs_data.operation_model(operation).output_shape)


def test_every_status_a_device_can_see_is_one_of_awss(jobs_data: ServiceModel) -> None:
    """SCHEDULED (a wave not yet released) is ours and never leaves the service."""
    aws = set(jobs_data.shape_for("JobExecutionStatus").enum)  # type: ignore[attr-defined]
    assert aws >= (PENDING | TERMINAL)
    assert SCHEDULED not in aws
    assert aws >= protocol.TERMINAL_STATUSES


def test_our_deployment_is_a_valid_aws_create_job(iot: ServiceModel) -> None:
    request = create_job_request(
        "deploy-defect-cls-7", DOC, ["line-3", "group:plant-02", "thing:press-7"],
        Rollout(abort_threshold_pct=10, wave_pct=(1, 10, 50, 100)), things=1000,
        region="eu-central-1", account="123456789012", description="cls 7 to plant 2",
        in_progress_timeout_min=60,
    )  # fmt: skip
    validate_parameters(request, _input(iot, "CreateJob"))
    assert json.loads(request["document"]) == DOC  # the job document is ours either way
    assert request["targets"] == [
        "arn:aws:iot:eu-central-1:123456789012:thinggroup/line-3",
        "arn:aws:iot:eu-central-1:123456789012:thinggroup/plant-02",
        "arn:aws:iot:eu-central-1:123456789012:thing/press-7",
    ]
    rate = request["jobExecutionsRolloutConfig"]["exponentialRate"]
    assert rate["baseRatePerMinute"] == 10 and rate["rateIncreaseCriteria"] == {"numberOfSucceededThings": 10}
    assert request["abortConfig"]["criteriaList"][0]["thresholdPercentage"] == 10.0


def test_one_wave_without_threshold_adds_no_rollout_or_abort_config(iot: ServiceModel) -> None:
    assert rollout_config(Rollout(), 50) == {}
    request = create_job_request(
        "j1", DOC, ["line-3"], Rollout(), things=50, region="us-east-1", account="1" * 12
    )
    validate_parameters(request, _input(iot, "CreateJob"))


def test_a_document_over_awss_inline_limit_is_refused_with_the_way_out() -> None:
    big = {**DOC, "note": "x" * 40_000}
    with pytest.raises(FleetError) as caught:
        create_job_request("j1", big, ["line-3"], Rollout(), things=1, region="us-east-1", account="1" * 12)
    assert "32 KB" in caught.value.message and "documentSource" in (caught.value.hint or "")
