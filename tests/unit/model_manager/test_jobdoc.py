"""Job documents: both dialects parse into typed operations; anything else fails naming the field."""

from __future__ import annotations

import json
from typing import Any

import pytest
from edgeinspect_model_manager.errors import JobDocumentError
from edgeinspect_model_manager.jobdoc import DeployModel, RemoveModel, SetThreshold, parse_job_document

SHA = "ab" * 32


def deploy_doc(**overrides: Any) -> dict[str, Any]:
    model = {"name": "cls", "version": "7", "url": "s3://bucket/cls-7.tar.gz", "sha256": SHA, "size": 1234}
    doc: dict[str, Any] = {"operation": "deploy_model", "model": model, "role": "primary"}
    doc.update(overrides)
    return doc


def test_deploy_model_document_becomes_a_deploy_operation() -> None:
    op = parse_job_document(deploy_doc(alias="line-3-cls", rollback_on_failure=False))
    assert op == DeployModel(
        name="cls", version="7", url="s3://bucket/cls-7.tar.gz", sha256=SHA, size=1234, role="primary",
        alias="line-3-cls", rollback_on_failure=False,
    )  # fmt: skip


def test_deploy_defaults_to_primary_with_rollback_and_no_alias() -> None:
    doc = deploy_doc()
    del doc["role"]
    op = parse_job_document(doc)
    assert isinstance(op, DeployModel)
    assert (op.role, op.alias, op.rollback_on_failure, op.dialect) == ("primary", None, True, "deploy_model")


def test_a_document_sent_as_a_json_string_is_accepted() -> None:
    assert isinstance(parse_job_document(json.dumps(deploy_doc())), DeployModel)


def test_sha256_is_normalised_to_lower_case() -> None:
    doc = deploy_doc()
    doc["model"]["sha256"] = "AB" * 32
    op = parse_job_document(doc)
    assert isinstance(op, DeployModel) and op.sha256 == SHA


@pytest.mark.parametrize("url", ["s3://b/k.tar.gz", "https://h/p.tar.gz?X-Amz=1", "file:///srv/p.tar.gz"])
def test_package_urls_of_every_supported_scheme(url: str) -> None:
    doc = deploy_doc()
    doc["model"]["url"] = url
    op = parse_job_document(doc)
    assert isinstance(op, DeployModel) and op.url == url


def test_the_original_samples_new_model_document_is_accepted() -> None:
    op = parse_job_document(
        {
            "type": "new_model",
            "model_name": "WindTurbine",
            "model_version": "1.10",
            "model_package_bucket": "my-bucket",
            "model_package_key": "models/WindTurbine-1.10.tar.gz",
            "something_else": "ignored, as the sample ignored it",
        }
    )
    assert op == DeployModel(
        name="WindTurbine", version="1.10", url="s3://my-bucket/models/WindTurbine-1.10.tar.gz",
        sha256=None, size=None, dialect="new_model",
    )  # fmt: skip


def test_a_numeric_sample_version_keeps_its_text() -> None:
    op = parse_job_document(
        {"type": "new_model", "model_name": "m", "model_version": 3, "model_package_bucket": "bkt",
         "model_package_key": "m-3.tar.gz"}
    )  # fmt: skip
    assert isinstance(op, DeployModel) and op.version == "3"


def test_remove_model_with_and_without_a_version() -> None:
    one = {"operation": "remove_model", "model": {"name": "cls", "version": "3"}}
    every = {"operation": "remove_model", "model": {"name": "cls"}}
    assert parse_job_document(one) == RemoveModel("cls", "3")
    assert parse_job_document(every) == RemoveModel("cls", None)


@pytest.mark.parametrize(
    ("doc", "fragment"),
    [
        ("{not json", "not valid JSON"),
        ([1, 2], "must be a JSON object"),
        ({}, "no 'operation'"),
        ({"operation": "reboot"}, "unknown job operation 'reboot'"),
        (deploy_doc(role="canary"), "role"),
        (deploy_doc(rollback_on_faliure=True), "rollback_on_faliure"),
        (deploy_doc(alias="has space"), "alias"),
        ({"operation": "deploy_model", "model": {"name": "cls", "version": "7"}}, "model.url"),
        ({**deploy_doc(), "model": {**deploy_doc()["model"], "sha256": "xyz"}}, "model.sha256"),
        ({**deploy_doc(), "model": {**deploy_doc()["model"], "version": "1..2"}}, "model.version"),
        ({**deploy_doc(), "model": {**deploy_doc()["model"], "url": "ftp://h/p.tar.gz"}}, "ftp"),
        ({**deploy_doc(), "model": {**deploy_doc()["model"], "url": "s3://bucket-only"}}, "names no object"),
        ({**deploy_doc(), "model": {**deploy_doc()["model"], "size": 0}}, "model.size"),
        ({"type": "new_model", "model_name": "m"}, "model_version"),
    ],
)
def test_malformed_documents_fail_naming_the_problem(doc: object, fragment: str) -> None:
    with pytest.raises(JobDocumentError) as caught:
        parse_job_document(doc)
    assert fragment in str(caught.value)


def test_set_threshold_keeps_only_the_keys_the_document_names() -> None:
    op = parse_job_document(
        {
            "operation": "set_threshold",
            "model": {"name": "defect-cls", "version": "7"},
            "thresholds": {"image": 0.3, "pixel": None},
            "requested_by": "ana",
            "reason": "escapes on line 3",
        }
    )
    assert op == SetThreshold("defect-cls", "7", {"image": 0.3, "pixel": None}, "ana", "escapes on line 3")
    every = parse_job_document(
        {"operation": "set_threshold", "model": {"name": "defect-cls"}, "thresholds": {"pixel": 0.6}}
    )
    assert every == SetThreshold("defect-cls", None, {"pixel": 0.6})


@pytest.mark.parametrize(
    ("thresholds", "says"),
    [
        ({"image": 1.5}, "thresholds.image"),
        ({"image": -0.1}, "between 0 and 1"),
        ({"image": "0.3"}, "must be a number"),
        ({"image": True}, "must be a number"),
        ({"image": float("nan")}, "between 0 and 1"),
        ({"imgae": 0.3}, "thresholds.imgae: Extra inputs"),
        ({}, "name image and/or pixel"),
    ],
)
def test_a_bad_threshold_fails_the_job_naming_the_field(thresholds: dict[str, Any], says: str) -> None:
    doc = {"operation": "set_threshold", "model": {"name": "defect-cls"}, "thresholds": thresholds}
    with pytest.raises(JobDocumentError, match=says) as caught:
        parse_job_document(doc)
    assert "malformed job document" in caught.value.message
