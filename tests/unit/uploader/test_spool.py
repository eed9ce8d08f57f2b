"""The spool: durable, idempotent, crash leftovers removed, quota eviction by documented priority."""

from __future__ import annotations

from pathlib import Path

import pytest
from edgeinspect_uploader.record import capture_files
from edgeinspect_uploader.spool import PutStatus, Spool, SpoolWriteError

from tests.unit.uploader.captures import make_captures


def spool_at(path: Path, quota: int = 10**9) -> Spool:
    spool = Spool(path, quota)
    spool.open()
    return spool


def test_spooled_capture_is_complete_and_survives_a_reopen(tmp_path: Path) -> None:
    (capture,) = make_captures(1, "l1", ["defect"])
    spool = spool_at(tmp_path)
    outcome = spool.put(capture_files(capture))
    assert outcome.status is PutStatus.SPOOLED
    folder = spool.path("l1+f0000")
    assert sorted(p.name for p in folder.iterdir()) == ["image.png", "mask.png", "result.json"]
    again = spool_at(tmp_path)
    assert again.names() == ["l1+f0000"]
    assert again.stats().bytes == outcome.entry.size


def test_a_second_delivery_of_the_same_frame_is_a_duplicate(tmp_path: Path) -> None:
    (capture,) = make_captures(1, "l1", ["good"])
    spool = spool_at(tmp_path)
    assert spool.put(capture_files(capture)).status is PutStatus.SPOOLED
    assert spool.put(capture_files(capture)).status is PutStatus.DUPLICATE
    assert spool.stats().captures == 1


def test_an_uploaded_frame_delivered_again_is_not_spooled_again(tmp_path: Path) -> None:
    (capture,) = make_captures(1, "l1", ["good"])
    spool = spool_at(tmp_path)
    spool.put(capture_files(capture))
    spool.finish(["l1+f0000"])
    assert not spool.path("l1+f0000").exists()
    assert spool_at(tmp_path).put(capture_files(capture)).status is PutStatus.DUPLICATE


def test_half_written_captures_from_a_crash_are_removed_on_open(tmp_path: Path) -> None:
    spool = spool_at(tmp_path)
    partial = spool.incoming / ".ei-tmp-l1+f0000-abcd"
    partial.mkdir()
    (partial / "image.png").write_bytes(b"half")
    reopened = spool_at(tmp_path)
    assert list(reopened.incoming.iterdir()) == []
    assert reopened.stats().captures == 0


def test_a_deletion_lost_in_a_crash_is_redone_on_open(tmp_path: Path) -> None:
    (capture,) = make_captures(1, "l1", ["good"])
    spool = spool_at(tmp_path)
    spool.put(capture_files(capture))
    (spool.uploaded / "l1+f0000").touch()  # marked uploaded, folder not yet deleted
    reopened = spool_at(tmp_path)
    assert reopened.stats().captures == 0
    assert not reopened.path("l1+f0000").exists()


def test_a_corrupt_spool_folder_is_moved_to_rejected_not_deleted(tmp_path: Path) -> None:
    spool = spool_at(tmp_path)
    bad = spool.ready / "l1+f9999"
    bad.mkdir()
    (bad / "result.json").write_text("{not json")
    reopened = spool_at(tmp_path)
    assert reopened.stats().captures == 0
    assert reopened.rejects.count() == 1


def test_quota_evicts_good_then_uncertain_then_defects_oldest_first(tmp_path: Path) -> None:
    kinds = ["defect", "good", "uncertain", "good", "defect"]
    kinds += ["uncertain", "good", "error", "uncertain", "good"]
    files = [capture_files(c) for c in make_captures(7, "l1", kinds, mask=True)]
    sizes = [f.size for f in files]
    assert 6 * min(sizes) > 5 * max(sizes)  # so the quota below holds exactly five captures
    spool = spool_at(tmp_path, quota=5 * max(sizes))
    evicted: list[str] = []
    statuses = []
    for f in files:
        outcome = spool.put(f)
        statuses.append(outcome.status)
        evicted += [e.frame_id for e in outcome.evicted]
    # good ones first, oldest first; then the oldest uncertain; the last good one is worth the least
    assert evicted == ["f0001", "f0003", "f0006", "f0002"]
    assert statuses[-1] is PutStatus.DROPPED
    assert sorted(n.split("+")[1] for n in spool.names()) == ["f0000", "f0004", "f0005", "f0007", "f0008"]
    assert spool.stats().bytes <= spool.quota_bytes


def test_a_newcomer_worth_less_than_everything_spooled_is_dropped(tmp_path: Path) -> None:
    *defects, good = [capture_files(c) for c in make_captures(8, "l1", ["defect", "defect", "good"])]
    spool = spool_at(tmp_path, quota=sum(f.size for f in defects))
    for f in defects:
        spool.put(f)
    outcome = spool.put(good)
    assert outcome.status is PutStatus.DROPPED
    assert outcome.evicted == []
    assert spool.stats().captures == 2


def test_claimed_captures_are_never_evicted(tmp_path: Path) -> None:
    goods = [capture_files(c) for c in make_captures(10, "l1", ["good", "good", "good"])]
    spool = spool_at(tmp_path, quota=goods[0].size * 2)
    spool.put(goods[0])
    spool.put(goods[1])
    claimed = spool.claim_batch(1, 10**9)
    assert [e.frame_id for e in claimed] == ["f0000"]
    outcome = spool.put(goods[2])
    assert [e.frame_id for e in outcome.evicted] == ["f0001"]
    assert spool.path("l1+f0000").exists()


def test_batches_take_defects_first_then_oldest(tmp_path: Path) -> None:
    spool = spool_at(tmp_path)
    for f in make_captures(11, "l1", ["good", "defect", "uncertain", "defect"]):
        spool.put(capture_files(f))
    batch = spool.claim_batch(3, 10**9)
    assert [e.frame_id for e in batch] == ["f0001", "f0003", "f0002"]
    assert [e.frame_id for e in spool.claim_batch(3, 10**9)] == ["f0000"]


def test_stats_report_backlog_by_class_and_oldest(tmp_path: Path) -> None:
    spool = spool_at(tmp_path)
    captures = make_captures(12, "l1", ["good", "defect", "uncertain"])
    for c in captures:
        spool.put(capture_files(c))
    stats = spool.stats()
    assert stats.captures == 3
    assert stats.by_class == {"good": 1, "uncertain": 1, "defect": 1}
    assert stats.oldest_ts_ns == captures[0].ts_ns


def test_a_failed_write_still_reports_what_it_evicted(tmp_path: Path) -> None:
    good, defect = [capture_files(c) for c in make_captures(13, "l1", ["good", "defect"], mask=True)]
    spool = spool_at(tmp_path, quota=max(good.size, defect.size))
    spool.put(good)
    spool.incoming.rmdir()
    spool.incoming.write_bytes(b"")  # the folder is gone: the next write fails like a broken disk would
    with pytest.raises(SpoolWriteError) as failed:
        spool.put(defect)
    assert [e.frame_id for e in failed.value.evicted] == ["f0000"]
    assert spool.stats().captures == 0


def test_a_capture_that_would_eat_the_journal_reserve_waits_with_enospc(tmp_path: Path) -> None:
    import errno
    import shutil

    (capture,) = [capture_files(c) for c in make_captures(1, "l1", ["defect"])]
    free = shutil.disk_usage(tmp_path).free
    spool = Spool(tmp_path, 10**9, reserve_bytes=free)  # whatever the disk holds: nothing may be taken
    spool.open()
    with pytest.raises(SpoolWriteError) as full:
        spool.put(capture)
    assert full.value.errno == errno.ENOSPC and "EI_SPOOL_RESERVE_BYTES" in str(full.value)
    assert spool.stats().captures == 0 and not list(spool.ready.iterdir())
    roomy = Spool(tmp_path, 10**9, reserve_bytes=1)
    roomy.open()
    assert roomy.put(capture).status is PutStatus.SPOOLED
