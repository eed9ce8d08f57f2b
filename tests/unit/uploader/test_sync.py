"""The upload protocol over a real ``file://`` store: layout, manifest parts, crash-resume, verification."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest
from edgeinspect.core.errors import StorageError
from edgeinspect.core.storage import ObjectInfo
from edgeinspect_uploader.journal import FileRef
from edgeinspect_uploader.layout import manifest_dir
from edgeinspect_uploader.manifest import parse_part, read_day
from edgeinspect_uploader.record import capture_files
from edgeinspect_uploader.sync import _confirms

from tests.unit.uploader.captures import DAY_NS, T0, make_captures
from tests.unit.uploader.syncparts import sync_parts


def test_a_batch_lands_under_the_documented_keys_with_one_manifest_part(tmp_path: Path) -> None:
    parts = sync_parts(tmp_path)
    captures = make_captures(1, "l1", ["defect", "good", "uncertain"])
    for c in captures:
        parts.spool.put(capture_files(c))
    assert parts.syncer.run_once() == 3
    keys = sorted(info.key for info in parts.store.list(""))
    assert "l1/2026/01/01/f0000/image.png" in keys
    assert "l1/2026/01/01/f0000/mask.png" in keys
    assert "l1/2026/01/01/f0001/result.json" in keys
    assert "l1/2026/01/01/f0001/mask.png" not in keys
    (part,) = [k for k in keys if k.startswith(manifest_dir("l1", date(2026, 1, 1)))]
    records = parse_part(parts.store.get_bytes(part))
    assert [r.frame_id for r in records] == ["f0000", "f0001", "f0002"]
    assert records[0].objects["image"].key == "l1/2026/01/01/f0000/image.png"
    assert parts.spool.stats().captures == 0
    assert parts.metrics.counts["uploaded_captures"] == 3
    assert parts.syncer.run_once() == 0


def test_a_batch_spanning_two_days_writes_one_part_per_day(tmp_path: Path) -> None:
    parts = sync_parts(tmp_path)
    for c in make_captures(2, "l1", ["good", "good"], start_ns=T0 - 1, step_ns=2):
        parts.spool.put(capture_files(c))
    parts.syncer.run_once()
    assert [r.frame_id for r in read_day(parts.store, "l1", date(2025, 12, 31))] == ["f0000"]
    assert [r.frame_id for r in read_day(parts.store, "l1", date(2026, 1, 1))] == ["f0001"]


def test_a_batch_interrupted_after_its_manifest_resumes_without_duplicating(tmp_path: Path) -> None:
    parts = sync_parts(tmp_path)
    for c in make_captures(3, "l1", ["defect", "good"]):
        parts.spool.put(capture_files(c))
    batch, resumed = parts.syncer._next_batch()
    assert batch is not None and not resumed
    parts.syncer._upload(batch, resumed)
    parts.syncer._publish_manifest(batch)
    # crash here: the spool folders and the journal are still there; a new process takes over
    again = sync_parts(tmp_path)
    assert again.spool.stats().captures == 2
    assert again.syncer.run_once() == 2
    assert again.metrics.counts["skipped_objects"] == 5  # nothing was sent twice
    assert again.metrics.counts["uploaded_bytes"] == 0
    lines = [r.frame_id for info in again.store.list("l1/2026/01/01/_manifest/")
             for r in parse_part(again.store.get_bytes(info.key))]  # fmt: skip
    assert lines == ["f0000", "f0001"]
    assert again.journal.open_batches() == []


def test_a_batch_interrupted_mid_upload_sends_only_what_is_missing(tmp_path: Path) -> None:
    parts = sync_parts(tmp_path)
    for c in make_captures(4, "l1", ["defect", "defect"]):
        parts.spool.put(capture_files(c))
    batch, _ = parts.syncer._next_batch()
    assert batch is not None
    first = batch.items[0]
    for ref in first.files:
        parts.store.put_file(ref.key, parts.spool.path(first.name) / ref.file)
    again = sync_parts(tmp_path)
    assert again.syncer.run_once() == 2
    assert again.metrics.counts["skipped_objects"] == len(first.files)
    assert again.metrics.counts["uploaded_bytes"] == sum(f.size for f in batch.items[1].files)


def test_new_batches_never_reuse_a_sequence_number(tmp_path: Path) -> None:
    parts = sync_parts(tmp_path)
    seqs = [parts.journal.next_seq() for _ in range(3)]
    assert seqs == [1, 2, 3]
    assert sync_parts(tmp_path).journal.next_seq() == 4
    assert sync_parts(tmp_path).journal.uploader_id() == parts.journal.uploader_id()


def test_the_reader_drops_a_capture_listed_by_two_parts(tmp_path: Path) -> None:
    parts = sync_parts(tmp_path)
    (capture,) = make_captures(5, "l1", ["defect"])
    parts.spool.put(capture_files(capture))
    parts.syncer.run_once()
    (part,) = list(parts.store.list("l1/2026/01/01/_manifest/"))
    parts.store.put_bytes(part.key.replace("part-", "part-zz"), parts.store.get_bytes(part.key))
    parts.store.put_bytes("l1/2026/01/01/_manifest/README.txt", b"not a part")
    assert [r.frame_id for r in read_day(parts.store, "l1", date(2026, 1, 1))] == ["f0000"]


def test_a_malformed_manifest_line_names_the_part_and_line() -> None:
    good = json.dumps({"frame_id": "x"})
    with pytest.raises(StorageError, match="line 2"):
        parse_part(f"\n{good}\n".encode(), "p1")


def test_store_confirmation_needs_size_and_digest() -> None:
    ref = FileRef("image.png", "k", 10, "a" * 64, "b" * 32)
    assert _confirms(ObjectInfo("k", 10, "e", sha256="a" * 64), ref)
    assert not _confirms(ObjectInfo("k", 10, "e", sha256="c" * 64), ref)
    assert not _confirms(ObjectInfo("k", 11, "e", sha256="a" * 64), ref)
    assert _confirms(ObjectInfo("k", 10, "b" * 32), ref)  # plain MD5 ETag
    assert not _confirms(ObjectInfo("k", 10, "c" * 32), ref)
    assert _confirms(ObjectInfo("k", 10, "abc-2"), ref)  # multipart ETag: size only
    assert not _confirms(None, ref)


def test_uploads_resume_across_days_of_backlog(tmp_path: Path) -> None:
    parts = sync_parts(tmp_path, batch=4)
    for c in make_captures(6, "l1", ["good"] * 10, step_ns=DAY_NS // 3):
        parts.spool.put(capture_files(c))
    while parts.syncer.run_once():
        pass
    days = [date(2026, 1, d) for d in (1, 2, 3, 4)]
    found = [r.frame_id for d in days for r in read_day(parts.store, "l1", d)]
    assert sorted(found) == [f"f{i:04d}" for i in range(10)]


def test_the_plc_part_id_is_in_the_manifest_so_a_part_is_found_without_its_result_json(
    tmp_path: Path,
) -> None:
    import dataclasses

    parts = sync_parts(tmp_path)
    tagged, plain = make_captures(3, "l1", ["defect", "good"])
    parts.spool.put(capture_files(dataclasses.replace(tagged, part_id="4711")))
    parts.spool.put(capture_files(plain))
    parts.syncer.run_once()
    records = read_day(parts.store, "l1", date(2026, 1, 1))
    assert [(r.frame_id, r.part_id) for r in records] == [("f0000", "4711"), ("f0001", "")]


def test_a_batch_journal_that_cannot_be_written_leaves_its_captures_to_the_next_try(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The spool's disk full: writing the batch journal failed after its captures were claimed, and the
    claims stayed, so no later batch took them (the full-spool fault test stalled with captures
    spooled and never uploaded, until a restart)."""
    parts = sync_parts(tmp_path)
    for c in make_captures(3, "l1", ["defect", "good"]):
        parts.spool.put(capture_files(c))
    write = parts.journal.write

    def disk_full(batch: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(parts.journal, "write", disk_full)
    with pytest.raises(OSError):
        parts.syncer.run_once()
    monkeypatch.setattr(parts.journal, "write", write)

    assert parts.syncer.run_once() == 2  # the same captures, once the disk has room again
    assert parts.spool.stats().captures == 0
