"""Automatic rollback: a new version that misbehaves on live traffic within the watch window is undone."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from edgeinspect.core.errors import AgentError

from tests.helpers.models import image
from tests.integration.model_manager.harness import CLS, DeviceKit, wait_for


@contextmanager
def line_traffic(kit: DeviceKit) -> Iterator[list[str]]:
    """Predictions on ``defect-cls`` with the line's 64x64 frames, as a worker sends them, until exit."""
    stop = threading.Event()
    seen: list[str] = []
    client = kit.agent()

    def send() -> None:
        frame = image(64, 64, level=128)
        while not stop.is_set():
            try:
                result = client.predict(CLS, {"image": frame})
                seen.append(f"{result.name}:{result.version}")
            except AgentError as exc:
                seen.append(exc.code)
            stop.wait(0.01)

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    try:
        yield seen
    finally:
        stop.set()
        thread.join(10)


def test_a_version_whose_predictions_error_is_rolled_back(kit: DeviceKit) -> None:
    kit.start_manager(rollback_window_s=60, rollback_min_requests=10, rollback_max_error_rate=0.2)
    first = kit.deploy("job-1", kit.publish(kit.package("cls", "1")), rollback_on_failure=False)
    assert first.status == "SUCCEEDED"
    # Built for 32x32 inputs: it loads and passes its own smoke test, but the line sends 64x64 frames.
    bad = kit.publish(kit.package("cls", "2", height=32, width=32))

    with line_traffic(kit) as seen:
        job = kit.deploy("job-2", bad)
        wait_for(lambda: seen[-1] == "cls:1", "traffic to be served by cls:1 again")

    assert job.status == "FAILED"
    reason = job.status_details["reason"]
    assert reason.startswith("rolled back: error rate") and reason.endswith("defect-cls serves cls:1 again")
    assert job.stages[-3:] == ["watching", "rolling_back", "rolled_back"]
    assert "INVALID_ARGUMENT" in seen  # the bad version did serve, and failed, before the rollback
    assert kit.serving() == "cls:1"
    assert kit.state["aliases"][CLS]["version"] == "1" and kit.state["watch"] is None
    (event,) = kit.events("model_rolled_back")
    assert (event.detail["version"], event.detail["restored"], event.level) == ("2", "cls:1", "warning")
    wait_for(lambda: "cls:2" not in kit.loaded() and kit.version_dirs("cls") == ["1"], "cls:2 to be deleted")


def test_a_version_slower_than_the_p99_limit_is_rolled_back(kit: DeviceKit) -> None:
    kit.start_manager(rollback_window_s=60, rollback_min_requests=5, rollback_max_p99_ms=20)
    assert (
        kit.deploy("job-1", kit.publish(kit.package("cls", "1")), rollback_on_failure=False).status
        == "SUCCEEDED"
    )
    # same scores, far slower: 122 ms a call on a quiet core, far past the 20 ms limit (400 iterations
    # took 12.6 ms there, and the version passed the watch whenever the box was idle)
    slow = kit.publish(kit.package("cls", "2", busy_iterations=4000))

    with line_traffic(kit) as seen:
        job = kit.deploy("job-2", slow)
        wait_for(lambda: seen[-1] == "cls:1", "traffic to be served by cls:1 again")

    assert job.status == "FAILED"
    assert job.status_details["reason"].startswith("rolled back: p99 latency"), job.status_details
    assert kit.serving() == "cls:1"


def test_a_good_version_under_traffic_passes_the_watch(kit: DeviceKit) -> None:
    kit.start_manager(rollback_window_s=2, rollback_min_requests=5)
    assert (
        kit.deploy("job-1", kit.publish(kit.package("cls", "1")), rollback_on_failure=False).status
        == "SUCCEEDED"
    )
    with line_traffic(kit) as seen:
        job = kit.deploy("job-2", kit.publish(kit.package("cls", "2", knob=1)))
        wait_for(lambda: seen[-1] == "cls:2", "traffic on cls:2")
    assert job.status == "SUCCEEDED", job.status_details
    assert set(seen) <= {"cls:1", "cls:2"}  # not one request failed across the swap
