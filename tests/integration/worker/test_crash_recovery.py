"""Crashes and shutdowns: a killed worker's frames are finished by a peer, exactly once; SIGTERM drains."""

from __future__ import annotations

import signal
from collections.abc import Callable
from typing import Any

from edgeinspect.core import names
from edgeinspect.core.lifecycle import wait_until
from edgeinspect.core.messages import Result
from edgeinspect_inference.worker.commit import Commit, Committer

from tests.integration.worker.conftest import LineKit, frame_pixels

ByFrame = Callable[[list[Result]], dict[str, Result]]


def _pending_of(line: LineKit, consumer: str) -> int:
    consumers: Any = line.client.xinfo_consumers(names.frames_stream(line.line), names.INFERENCE_GROUP)
    for info in consumers:
        name = info["name"].decode() if isinstance(info["name"], bytes) else info["name"]
        if name == consumer:
            return int(info["pending"])
    return 0


def test_a_killed_workers_pending_frames_are_finished_by_another_worker(
    line: LineKit, by_frame: ByFrame
) -> None:
    line.deploy()
    total = 40
    for i in range(total):
        line.send(f"f{i:03d}", frame_pixels("bright" if i % 5 == 0 else "dark"))
    victim = line.worker_process(consumer="victim", pipeline_depth="2", http_port="0")
    try:
        assert wait_until(lambda: len(line.results()) >= 5, 60), "the first worker produced no results"
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=10)
    finally:
        if victim.poll() is None:
            victim.kill()
    held = _pending_of(line, "victim")
    assert held > 0, "the victim held no unacknowledged frame when killed"
    with line.worker(consumer="successor", stale_ms=500):
        results = by_frame(line.wait_results(total, timeout=120))
        assert wait_until(lambda: line.pending() == 0, 30)
    assert sorted(results) == [f"f{i:03d}" for i in range(total)]
    assert _pending_of(line, "victim") == 0
    for frame_id, result in results.items():
        assert result.verdict == ("defect" if int(frame_id[1:]) % 5 == 0 else "ok"), frame_id


def test_a_frame_committed_twice_keeps_one_result_and_both_entries_are_acknowledged(line: LineKit) -> None:
    """What a successor meets when it took over a frame the first worker finished while merely slow."""
    streams = line.streams
    stream = names.frames_stream(line.line)
    streams.ensure_group(stream, names.INFERENCE_GROUP)
    first_id = line.send("same")
    second_id = line.send("same")  # e.g. the camera re-sent it, or a peer reclaimed it
    entries = streams.read_group([stream], names.INFERENCE_GROUP, "c1", count=10, block_ms=100)
    assert [e.id for e in entries] == [first_id, second_id]
    committer = Committer(line.client, line.line, names.INFERENCE_GROUP)
    result = Result("same", line.line, 1, "ok", 0.1, [], 3.0)
    assert committer.commit(Commit(first_id, result)) is True
    assert committer.commit(Commit(second_id, result)) is False
    assert [r.frame_id for r in line.results()] == ["same"]
    assert line.pending() == 0


def test_sigterm_finishes_frames_in_flight_acknowledges_them_and_exits_zero(line: LineKit) -> None:
    line.deploy()
    worker = line.worker_process(consumer="graceful", http_port="0")
    for i in range(20):
        line.send(f"f{i:03d}", frame_pixels("dark"))
    assert wait_until(lambda: len(line.results()) >= 3, 60)
    worker.send_signal(signal.SIGTERM)
    _, stderr = worker.communicate(timeout=30)
    assert worker.returncode == 0, stderr.decode(errors="replace")[-3000:]
    assert _pending_of(line, "graceful") == 0
    assert b"worker_stopped" in stderr
    done = {r.frame_id for r in line.results()}
    assert len(done) == len(line.results())  # nothing judged twice


def test_frames_wait_while_the_agent_is_down_instead_of_becoming_error_results(
    line: LineKit, by_frame: ByFrame
) -> None:
    line.deploy()
    with line.worker(consumer="first") as service:
        line.send("before", frame_pixels("dark"))
        line.wait_results(1)
        line.agent.stop()
        for i in range(3):
            line.send(f"during-{i}", frame_pixels("bright"))

        def noticed() -> bool:
            labels = {"line": line.line, "reason": "agent_unavailable"}
            return bool(service.metrics.registry.get_sample_value("ei_worker_errors_total", labels))

        assert wait_until(noticed, 30), "the worker never noticed the agent was gone"
    assert len(line.results()) == 1  # stopped during the outage: the frames wait, none became an error
    assert line.pending() >= 1  # what the first worker held stays pending (the rest was never read)
    line.agent.start()
    line.deploy()  # the agent keeps no state: the model manager loads the models again
    with line.worker(consumer="second", stale_ms=500):
        results = by_frame(line.wait_results(4))
    assert [results[f"during-{i}"].verdict for i in range(3)] == ["defect"] * 3
    assert line.pending() == 0
