"""Deployments that fail: each ends FAILED with its reason, and the previous model keeps serving untouched."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.fixtures.servers import LOOPBACK, free_port
from tests.integration.model_manager.harness import CLS, DeviceKit, tamper


def _tampered(kit: DeviceKit) -> dict[str, Any]:
    tar = tamper(kit.package("cls", "2", knob=3), kit.workdir / "cls-2.tar.gz")
    return kit.deploy_doc(kit.publish(tar))  # its own sha256: the download passes, the manifest does not


def _wrong_sha256(kit: DeviceKit) -> dict[str, Any]:
    return kit.deploy_doc(kit.publish(kit.package("cls", "2", knob=3)), model={"sha256": "0" * 64})


def _unreachable_url(kit: DeviceKit) -> dict[str, Any]:
    url = f"https://{LOOPBACK}:{free_port()}/packages/cls-2.tar.gz"  # nothing listens there
    return kit.deploy_doc(kit.publish(kit.package("cls", "2", knob=3)), model={"url": url})


def _missing_object(kit: DeviceKit) -> dict[str, Any]:
    published = kit.publish(kit.package("cls", "2", knob=3))
    return kit.deploy_doc(published, model={"url": f"s3://{kit.bucket}/packages/nope.tar.gz", "size": None})


def _smoke_fails(kit: DeviceKit) -> dict[str, Any]:
    return kit.deploy_doc(kit.publish(kit.package("cls", "2", knob=3, broken=True)))


def _malformed(kit: DeviceKit) -> dict[str, Any]:
    return {"operation": "deploy_model", "model": {"name": "cls", "version": "2"}, "role": "primary"}


def _wrong_package(kit: DeviceKit) -> dict[str, Any]:
    published = kit.publish(kit.package("cls", "3", knob=3))
    return kit.deploy_doc(published, model={"version": "2"})  # the job says 2, the signed manifest says 3


CASES: dict[str, tuple[Callable[[DeviceKit], dict[str, Any]], str, str]] = {
    "tampered_package": (_tampered, "verifying", "file model.onnx has sha256"),
    "wrong_sha256": (_wrong_sha256, "downloading", "sha256 mismatch"),
    "unreachable_url": (_unreachable_url, "downloading", "download of https://127.0.0.1:"),
    "missing_object": (_missing_object, "downloading", "no package at s3://"),
    "smoke_test_fails": (_smoke_fails, "smoke_testing", "smoke test failed: output 'defect_probability'"),
    "malformed_document": (_malformed, "validating", "malformed job document: model.url: Field required"),
    "package_of_another_version": (
        _wrong_package,
        "verifying",
        "the package holds cls:3, but the job names cls:2",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_failed_deployment_reports_why_and_leaves_the_previous_model_serving(
    kit: DeviceKit, case: str
) -> None:
    make_doc, stage, reason = CASES[case]
    kit.start_manager()
    assert kit.deploy("job-1", kit.publish(kit.package("cls", "1"))).status == "SUCCEEDED"
    score_before, state_before = kit.score(), kit.state

    job = kit.run_job("job-2", make_doc(kit))

    assert job.status == "FAILED"
    assert reason in job.status_details["reason"], job.status_details
    assert job.status_details["stage"] == stage
    assert kit.serving() == "cls:1" and kit.score() == score_before
    assert "cls:2" not in kit.loaded()
    assert kit.version_dirs("cls") == ["1"]  # nothing half-written left behind, no temp folders either
    assert kit.staging() == []
    state = kit.state
    assert (state["aliases"], state["versions"]) == (state_before["aliases"], state_before["versions"])
    failed = kit.events("job_status")[-1].detail
    assert (failed["job_id"], failed["status"]) == ("job-2", "FAILED") and reason in failed["reason"]
    assert kit.alias(CLS) is not None
