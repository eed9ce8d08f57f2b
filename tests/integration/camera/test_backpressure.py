"""Backpressure: at most ``max_backlog`` unconsumed frames, and every dropped frame counted exactly in
the metric and in ``frame_dropped`` events, for both policies, with and without the worker's group."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import redis
from edgeinspect.core import names
from edgeinspect.core.lifecycle import wait_until
from edgeinspect.core.messages import Frame
from edgeinspect.core.streams import GroupReader, Streams
from edgeinspect_camera.sources.base import Grab
from edgeinspect_camera.sources.folder import FolderSource

from tests.integration.camera.conftest import StartCamera, dropped_in_events, events, frames
from tests.unit.camera.helpers import FakeClock, write_folder

GROUP = names.INFERENCE_GROUP
CAPTURED, BACKLOG = 20, 5


def _replay(start_camera: StartCamera, folder: Path, policy: str) -> None:
    camera = start_camera(
        source=f"folder://{folder}",
        fps=10.0,
        loop=False,
        max_backlog=BACKLOG,
        drop_policy=policy,
        clock=FakeClock(),
        background=False,
    )
    camera.run()
    assert camera.metrics.value("edgeinspect_camera_frames_captured_total") == CAPTURED
    assert camera.metrics.dropped_total(policy) == CAPTURED - BACKLOG
    assert camera.metrics.value("edgeinspect_camera_frames_published_total") == (
        BACKLOG if policy == "drop_newest" else CAPTURED
    )


def _delivered(client: redis.Redis, line: str) -> list[str]:
    """What an inference worker joining now would be handed, in order."""
    batch = Streams(client).read_group(
        [names.frames_stream(line)], GROUP, "worker-1", count=100, block_ms=None
    )
    return [entry.parse(Frame).source for entry in batch]


@pytest.mark.parametrize(("policy", "kept"), [("drop_newest", range(0, 5)), ("drop_oldest", range(15, 20))])
def test_without_a_consumer_group_the_stream_holds_exactly_the_backlog(
    start_camera: StartCamera,
    redis_client: redis.Redis,
    line_id: str,
    tmp_path: Path,
    policy: str,
    kept: range,
) -> None:
    write_folder(tmp_path, CAPTURED)
    _replay(start_camera, tmp_path, policy)
    assert [f.source for f in frames(redis_client, line_id)] == [f"img{i}.png" for i in kept]
    assert dropped_in_events(redis_client, line_id, policy) == CAPTURED - BACKLOG


@pytest.mark.parametrize(("policy", "kept"), [("drop_newest", range(0, 5)), ("drop_oldest", range(15, 20))])
def test_with_an_idle_group_the_group_is_handed_exactly_the_kept_frames(
    start_camera: StartCamera,
    redis_client: redis.Redis,
    line_id: str,
    tmp_path: Path,
    policy: str,
    kept: range,
) -> None:
    write_folder(tmp_path, CAPTURED)
    Streams(redis_client).ensure_group(names.frames_stream(line_id), GROUP)
    _replay(start_camera, tmp_path, policy)
    (group,) = redis_client.xinfo_groups(names.frames_stream(line_id))
    assert group["lag"] == BACKLOG  # Redis still knows the lag exactly: no XDEL tombstones
    assert _delivered(redis_client, line_id) == [f"img{i}.png" for i in kept]
    assert dropped_in_events(redis_client, line_id, policy) == CAPTURED - BACKLOG


def test_dropped_oldest_frames_are_named_in_the_events(
    start_camera: StartCamera, redis_client: redis.Redis, line_id: str, tmp_path: Path
) -> None:
    write_folder(tmp_path, CAPTURED)
    Streams(redis_client).ensure_group(names.frames_stream(line_id), GROUP)
    _replay(start_camera, tmp_path, "drop_oldest")
    published = {f.frame_id: f.source for f in frames(redis_client, line_id)}
    named = [fid for e in events(redis_client, line_id, "frame_dropped") for fid in e.detail["frame_ids"]]
    assert [published[fid] for fid in named] == [f"img{i}.png" for i in range(15)]


class _ConsumedFolder(FolderSource):
    """A replay folder whose line takes one frame for every two captured (a slow inference worker
    that never acks): deterministic interleaving without threads."""

    def __init__(self, root: Path, reader: GroupReader) -> None:
        super().__init__(root, loop=False)
        self.reader = reader
        self.taken: list[str] = []
        self.reads = 0

    def read(self) -> Grab | None:
        self.reads += 1
        if self.reads % 2 == 0:
            batch = self.reader.streams.read_group(
                [self.reader.stream], GROUP, "slow", count=1, block_ms=None
            )
            self.taken.extend(Frame.from_fields(e.fields).source for e in batch)
        return super().read()


@pytest.mark.parametrize("policy", ["drop_oldest", "drop_newest"])
def test_frames_being_worked_on_do_not_count_and_nothing_is_lost_or_doubled(
    start_camera: StartCamera, redis_client: redis.Redis, line_id: str, tmp_path: Path, policy: str
) -> None:
    write_folder(tmp_path, 40, masks=False)
    streams = Streams(redis_client)
    reader = GroupReader(streams, names.frames_stream(line_id), GROUP, "slow")
    reader.start()
    source = _ConsumedFolder(tmp_path, reader)
    camera = start_camera(
        frame_source=source,
        fps=10.0,
        max_backlog=BACKLOG,
        drop_policy=policy,
        clock=FakeClock(),
        background=False,
    )
    camera.run()
    waiting = _delivered(redis_client, line_id)
    dropped = camera.metrics.dropped_total(policy)
    assert len(source.taken) + len(waiting) + dropped == 40  # every frame delivered, waiting or dropped
    assert (
        len(waiting) == BACKLOG and streams.pending_count(names.frames_stream(line_id), GROUP) == 40 - dropped
    )
    delivered = source.taken + waiting
    assert len(set(delivered)) == len(delivered)
    assert delivered == sorted(delivered, key=lambda n: int(n[3:-4]))  # in capture order
    assert dropped_in_events(redis_client, line_id, policy) == dropped > 0


def test_fps_zero_follows_the_consumer_and_drops_nothing(
    start_camera: StartCamera, redis_client: redis.Redis, line_id: str, tmp_path: Path
) -> None:
    names_written = write_folder(tmp_path, 30, masks=False)
    streams = Streams(redis_client)
    reader = GroupReader(streams, names.frames_stream(line_id), GROUP, "worker", block_ms=100, batch=2)
    reader.start()
    seen: list[str] = []
    done = threading.Event()

    def consume() -> None:
        while not done.is_set():
            for entry in reader.next_batch():
                seen.append(entry.parse(Frame).source)
                done.wait(0.01)  # a slower line than the camera
                reader.ack(entry.id)

    worker = threading.Thread(target=consume, daemon=True)
    worker.start()
    camera = start_camera(source=f"folder://{tmp_path}", fps=0.0, loop=False, max_backlog=3)
    try:
        assert wait_until(lambda: len(seen) == 30, timeout=60)
    finally:
        done.set()
        worker.join(5)
    camera.stop()
    assert seen == names_written
    assert sum(camera.metrics.dropped_total(r) for r in ("drop_oldest", "drop_newest")) == 0
    assert camera.metrics.value("edgeinspect_camera_backlog") <= 3
