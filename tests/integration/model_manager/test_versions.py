"""Versions: the original sample's new_model job, version order ("10" > "9"), trimming, remove_model."""

from __future__ import annotations

from tests.integration.model_manager.harness import CLS, DeviceKit, wait_for


def new_model_doc(kit: DeviceKit, version: str) -> dict[str, str]:
    """The document the SageMaker Edge Manager sample's cloud side sends, unchanged."""
    published = kit.publish(kit.package("cls", version), key=f"models/cls-{version}.tar.gz")
    return {
        "type": "new_model",
        "model_version": version,
        "model_name": "cls",
        "model_package_bucket": kit.bucket,
        "model_package_key": published.key,
    }


def test_the_samples_new_model_jobs_upgrade_comparing_versions_as_versions(kit: DeviceKit) -> None:
    kit.start_manager()
    assert kit.run_job("job-a", new_model_doc(kit, "1.9")).status == "SUCCEEDED"

    upgrade = kit.run_job("job-b", new_model_doc(kit, "1.10"))  # as floats 1.10 < 1.9: the sample refused it

    assert upgrade.status == "SUCCEEDED", upgrade.status_details
    assert kit.serving() == "cls:1.10"
    downgrade = kit.run_job("job-c", new_model_doc(kit, "1.8"))
    assert downgrade.status == "FAILED"
    assert (
        "version 1.8 of cls is not newer than the serving version 1.10" in downgrade.status_details["reason"]
    )
    assert kit.serving() == "cls:1.10" and kit.version_dirs("cls") == ["1.10", "1.9"]


def test_old_versions_are_trimmed_oldest_version_first(kit: DeviceKit) -> None:
    """With 2 kept, deploying 9, 10, 11 deletes 9, the oldest as a version (as text, "10" < "9")."""
    kit.start_manager(max_versions=2)
    for version in ("9", "10", "11"):
        tar = kit.package("cls", version)
        doc = kit.deploy_doc(kit.publish(tar), model={"url": f"file://{tar}"})  # the file:// scheme too
        assert kit.run_job(f"job-{version}", doc).status == "SUCCEEDED"

    wait_for(lambda: kit.loaded() == {"cls:11"}, "10 to be unloaded after the grace period")
    assert kit.version_dirs("cls") == ["10", "11"]
    assert sorted(kit.state["versions"]) == ["cls:10", "cls:11"]
    assert kit.serving() == "cls:11"


def test_remove_model_deletes_a_standby_version_and_refuses_the_serving_one(kit: DeviceKit) -> None:
    kit.start_manager()
    for version in ("1", "2"):
        assert kit.deploy(f"job-{version}", kit.publish(kit.package("cls", version))).status == "SUCCEEDED"

    refused = kit.run_job("rm-2", {"operation": "remove_model", "model": {"name": "cls", "version": "2"}})
    assert refused.status == "FAILED"
    assert (
        refused.status_details["reason"]
        == "cls:2 serves alias 'defect-cls'; deploy another version to it first"
    )

    removed = kit.run_job("rm-1", {"operation": "remove_model", "model": {"name": "cls", "version": "1"}})
    assert removed.status == "SUCCEEDED", removed.status_details
    assert kit.version_dirs("cls") == ["2"] and list(kit.state["versions"]) == ["cls:2"]
    again = kit.run_job("rm-1b", {"operation": "remove_model", "model": {"name": "cls", "version": "1"}})
    assert again.status == "SUCCEEDED" and again.status_details["note"] == "nothing to remove"
    assert kit.serving() == "cls:2" and kit.alias(CLS) is not None


def test_a_version_is_never_replaced_by_a_different_package(kit: DeviceKit) -> None:
    kit.start_manager()
    assert kit.deploy("job-1", kit.publish(kit.package("cls", "1"))).status == "SUCCEEDED"
    assert kit.deploy("job-2", kit.publish(kit.package("cls", "2"))).status == "SUCCEEDED"
    other = kit.publish(kit.package("cls", "1", knob=5), key="packages/rebuilt/cls-1.tar.gz")

    job = kit.deploy("job-3", other)

    assert job.status == "FAILED"
    assert "cls:1 is already installed from a package with sha256" in job.status_details["reason"]
    assert kit.serving() == "cls:2" and kit.version_dirs("cls") == ["1", "2"]
