"""The real model manager against hostile jobs: each one ends FAILED with a reason, nothing else changes.

Reproduces issue 15: a job document or a notify-next payload of ``[`` x 100,000 used to crash the
manager (and crash-loop it on the same IN_PROGRESS job) or kill its dispatcher thread while ``/readyz``
stayed 200; a deploy with jobId ``..`` SUCCEEDED and its staging cleanup deleted every installed model.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from edgeinspect.core import topics

from tests.integration.model_manager.harness import DeviceKit
from tests.reliability.hostile import BRACKET_BOMB, raw_publish

pytestmark = pytest.mark.slow


def _nested(depth: int) -> dict[str, Any]:
    doc: dict[str, Any] = {"operation": "deploy_model"}
    for _ in range(depth):
        doc = {"operation": "deploy_model", "model": doc}
    return doc


def _installed_v1(kit: DeviceKit) -> None:
    kit.start_manager()
    assert kit.deploy("job-1", kit.publish(kit.package("cls", "1"))).status == "SUCCEEDED"


def _still_serving_v1(kit: DeviceKit) -> None:
    assert kit.manager.proc is not None and kit.manager.proc.poll() is None, kit.manager.logs()[-3000:]
    assert httpx.get(f"{kit.manager.http_url}/readyz", timeout=5).status_code == 200
    assert kit.serving() == "cls:1"
    assert kit.version_dirs("cls") == ["1"]


def test_a_bracket_bomb_job_document_fails_the_job_and_the_manager_carries_on(kit: DeviceKit) -> None:
    _installed_v1(kit)

    bombs = {
        "job-bomb": BRACKET_BOMB.decode(),  # a string document, as AWS sends it over HTTPS: too large
        "job-deep": "[" * 30_000,  # small enough, too deep
        "job-deep-object": _nested(300),  # an object, as it arrives over MQTT, nested 300 deep
    }
    for job_id, document in bombs.items():
        job = kit.run_job(job_id, document)

        assert job.status == "FAILED", job_id
        assert job.status_details["stage"] == "validating"
        assert "job document" in job.status_details["reason"], job.status_details
    assert "over the limit of" in kit.cloud.execution(kit.thing, "job-bomb").status_details["reason"]
    assert "nests deeper than" in kit.cloud.execution(kit.thing, "job-deep").status_details["reason"]
    _still_serving_v1(kit)
    assert kit.deploy("job-3", kit.publish(kit.package("cls", "3"))).status == "SUCCEEDED"


def test_a_bracket_bomb_on_notify_next_leaves_the_dispatcher_and_later_jobs_working(kit: DeviceKit) -> None:
    _installed_v1(kit)

    raw_publish(kit.broker_url, topics.jobs_notify_next(kit.root, kit.thing), BRACKET_BOMB)
    assert kit.deploy("job-2", kit.publish(kit.package("cls", "2"))).status == "SUCCEEDED"

    metrics = httpx.get(f"{kit.manager.http_url}/metrics", timeout=5).text
    assert "edgeinspect_model_manager_mqtt_bad_payloads_total 1.0" in metrics
    assert "edgeinspect_model_manager_mqtt_dispatcher_alive 1.0" in metrics
    assert httpx.get(f"{kit.manager.http_url}/readyz", timeout=5).status_code == 200


@pytest.mark.parametrize("job_id", [".."])
def test_a_job_id_that_is_not_a_plain_name_is_refused_and_deletes_nothing(
    kit: DeviceKit, job_id: str
) -> None:
    _installed_v1(kit)

    job = kit.deploy(job_id, kit.publish(kit.package("cls", "2")))

    assert job.status == "FAILED"
    assert "invalid job id" in job.status_details["reason"], job.status_details
    _still_serving_v1(kit)
    kit.manager.stop()
    kit.start_manager()  # the models must survive a restart too (the staging cleanup runs then)
    _still_serving_v1(kit)


def test_a_job_whose_start_next_reply_cannot_be_read_ends_failed_and_later_jobs_run(kit: DeviceKit) -> None:
    """A document that makes the whole reply unreadable (deeper than the MQTT payload limit, or larger
    than it) used to be asked for again with backoff forever: the job stayed IN_PROGRESS and every job
    queued behind it waited. Now it ends FAILED with the reason, and the line keeps serving v1."""
    _installed_v1(kit)
    kit.manager.stop()
    kit.start_manager(jobs_unreadable_attempts=2)

    unreadable = {
        "job-too-deep": _nested(600),  # the reply nests deeper than the device parses MQTT payloads
        "job-too-large": {"operation": "deploy_model", "pad": "x" * 300_000},  # over 256 KiB
    }
    for job_id, document in unreadable.items():
        kit.cloud.create_job(job_id, document, [kit.thing])
    later = kit.publish(kit.package("cls", "3"))
    kit.cloud.create_job("job-3", kit.deploy_doc(later), [kit.thing])

    for job_id in unreadable:
        job = kit.cloud.wait_terminal(kit.thing, job_id, timeout=90)
        assert job.status == "FAILED", (job_id, job.updates)
        assert job.status_details["stage"] == "validating"
        assert "cannot read the job document" in job.status_details["reason"], job.status_details
    assert "deeper than" in kit.cloud.execution(kit.thing, "job-too-deep").status_details["reason"]
    assert "over the limit of" in kit.cloud.execution(kit.thing, "job-too-large").status_details["reason"]
    assert kit.serving() == "cls:1"  # nothing was deployed for them
    assert kit.cloud.wait_terminal(kit.thing, "job-3", timeout=90).status == "SUCCEEDED"
    assert kit.serving() == "cls:3"
