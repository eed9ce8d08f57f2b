"""A line overrides a model's threshold on the device: a set_threshold job through the real broker, the
real model manager and the real inference worker, with no new package.

The job is recorded (state.json, the retained device state) and audited (a ``threshold_set`` event
with who, when, the old and the new value); the worker judges the next frames with the new threshold
and says which one it used; a bad value fails the job and changes nothing; clearing it brings the
package's threshold back; a Redis or manager restart does not lose it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from edgeinspect.core import names
from edgeinspect.core.messages import Event, Result

from tests.fixtures.redis_server import RedisServer
from tests.integration.model_manager.harness import DeviceKit, wait_for
from tests.integration.worker.conftest import DARK, LineKit, frame_pixels
from tests.integration.worker.test_swap_and_shadow import expected_score

MANIFEST_THRESHOLD = 0.5  # what the test packages ship with


def threshold_doc(image: float | None, **extra: Any) -> dict[str, Any]:
    return {
        "operation": "set_threshold",
        "model": {"name": "cls"},
        "thresholds": {"image": image},
        "requested_by": "ana",
        "reason": "escapes of thin cracks",
        **extra,
    }


def applied(line: LineKit) -> dict[str, Any]:
    """What the line's worker says it applies (``ei:thresholds:{line}``)."""
    raw = line.client.get(names.line_thresholds_key(line.line))
    return {} if raw is None else dict(json.loads(raw)["overrides"])


@pytest.fixture
def device_table(kit: DeviceKit) -> Iterator[None]:
    """The device-wide ``ei:thresholds`` lives in the session's shared Redis: the managers are stopped
    and the key removed after the test, so no other test's line inherits these overrides."""
    yield
    for manager in kit.managers:
        manager.stop()
    kit.redis_client.delete(names.threshold_overrides_key())


def judge_dark(line: LineKit, frame_id: str) -> Result:
    before = len(line.results())
    line.send(frame_id, frame_pixels("dark"))
    result = line.wait_results(before + 1)[-1]
    assert result.frame_id == frame_id
    return result


def test_a_set_threshold_job_changes_the_verdicts_and_is_audited(
    kit: DeviceKit, redis_server: RedisServer, device_table: None
) -> None:
    kit.start_manager(reconcile_interval_s=0.3)
    assert kit.deploy("job-1", kit.publish(kit.package("cls", "1"))).status == "SUCCEEDED"
    line = LineKit(kit.line, redis_server.url, kit.redis_client, kit.agent_server)
    lowered = round(expected_score(DARK, 0.0) / 2, 6)  # a dark (good) part now scores above it

    with line.worker():
        first = judge_dark(line, "f0")
        assert (first.verdict, first.predictions[0].threshold) == ("ok", MANIFEST_THRESHOLD)

        job = kit.run_job("thr-1", threshold_doc(lowered))
        assert job.status == "SUCCEEDED", job.status_details
        assert job.stages == ["applying", "done"]
        details = job.status_details
        assert (details["key"], details["image"], details["previous_image"]) == (
            "cls",
            f"{lowered:g}",
            "manifest",
        )
        wait_for(lambda: applied(line).get("cls", {}).get("image") == lowered, "the worker to apply it")

        second = judge_dark(line, "f1")
        assert (second.verdict, second.predictions[0].threshold) == ("defect", lowered)

        (event,) = kit.events("threshold_set")
        audit = event.detail
        assert (audit["old_image"], audit["new_image"], audit["set_by"], audit["job_id"]) == (
            None, lowered, "ana", "thr-1"
        )  # fmt: skip
        assert audit["reason"] == "escapes of thin cracks" and audit["set_at"] > 0
        recorded = kit.state["thresholds"]["cls"]
        assert (recorded["image"], recorded["set_by"], recorded["job_id"]) == (lowered, "ana", "thr-1")
        assert kit.retained_state()["thresholds"]["cls"]["image"] == lowered

        bad = kit.run_job("thr-bad", threshold_doc(7))
        assert bad.status == "FAILED" and bad.status_details["stage"] == "validating"
        assert "thresholds.image" in bad.status_details["reason"]
        assert "between 0 and 1" in bad.status_details["reason"]
        assert kit.state["thresholds"]["cls"]["image"] == lowered  # nothing changed

        kit.redis_client.delete(names.threshold_overrides_key())  # a Redis that restarted empty
        wait_for(lambda: kit.redis_client.get(names.threshold_overrides_key()), "the manager to rewrite it")
        assert judge_dark(line, "f2").verdict == "defect"

        cleared = kit.run_job("thr-clear", threshold_doc(None))
        assert cleared.status == "SUCCEEDED", cleared.status_details
        assert (cleared.status_details["image"], cleared.status_details["previous_image"]) == (
            "manifest", f"{lowered:g}"
        )  # fmt: skip
        wait_for(lambda: applied(line) == {}, "the worker to drop the override")
        third = judge_dark(line, "f3")
        assert (third.verdict, third.predictions[0].threshold) == ("ok", MANIFEST_THRESHOLD)
        assert [e.detail["new_image"] for e in kit.events("threshold_set")] == [lowered, None]
        assert "cls" not in kit.state["thresholds"]


def test_an_override_survives_a_manager_restart_and_a_version_key_beats_the_model_key(
    kit: DeviceKit, redis_server: RedisServer, device_table: None
) -> None:
    kit.start_manager()
    assert kit.deploy("job-1", kit.publish(kit.package("cls", "1"))).status == "SUCCEEDED"
    assert kit.run_job("thr-all", threshold_doc(0.2)).status == "SUCCEEDED"
    pinned = threshold_doc(0.3, model={"name": "cls", "version": "1"})
    assert kit.run_job("thr-v1", pinned).status == "SUCCEEDED"
    kit.manager.stop()
    kit.redis_client.delete(names.threshold_overrides_key())
    kit.start_manager()  # restores the table from state.json before it takes jobs
    wait_for(lambda: kit.redis_client.get(names.threshold_overrides_key()), "the restored table")

    line = LineKit(kit.line, redis_server.url, kit.redis_client, kit.agent_server)
    with line.worker(threshold_overrides=json.dumps({"cls": {"image": 0.9}})):
        result = judge_dark(line, "f0")
    assert result.predictions[0].threshold == pytest.approx(0.3)  # cls:1 (job) over cls (job over setting)
    table = applied(line)
    assert (table["cls"]["image"], table["cls"]["source"]) == (0.2, "job")
    assert (table["cls:1"]["image"], table["cls:1"]["set_by"]) == (0.3, "ana")
    events = [entry.parse(Event) for entry in line.streams.latest(names.events_stream(), 100)]
    (announced,) = [e for e in events if e.type == "threshold_setting" and e.line == line.line]
    assert announced.detail["overrides"]["cls"]["image"] == 0.9  # the setting is audited too
