"""Verified, size-limited, resumable download, identical on both stores."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from edgeinspect.core.errors import StorageError
from edgeinspect.core.storage import ObjectNotFoundError, ObjectStore, S3Store
from edgeinspect.core.storage.download import part_path

from tests.unit.core.storage.conftest import payload, record_wrong_sha256

MIB = 1 << 20


class _Interrupt(Exception):
    """Stands in for a dropped link part-way through a download."""


def test_download_with_matching_sha256_lands_complete(store: ObjectStore, tmp_path: Path) -> None:
    data = payload(3 * MIB + 123)
    store.put_bytes("pkg/m-1.tar.gz", data)
    dest = tmp_path / "out" / "m-1.tar.gz"
    seen: list[int] = []
    info = store.download(
        "pkg/m-1.tar.gz", dest, expected_sha256=hashlib.sha256(data).hexdigest(), progress=seen.append
    )
    assert dest.read_bytes() == data
    assert info.sha256 == hashlib.sha256(data).hexdigest()
    assert not part_path(dest).exists()
    assert seen == sorted(seen) and seen[-1] == len(data)


def test_sha256_mismatch_leaves_nothing_at_dest(store: ObjectStore, tmp_path: Path) -> None:
    data = payload(200_000)
    store.put_bytes("pkg/m.tar.gz", data)
    dest = tmp_path / "m.tar.gz"
    wrong = "ab" * 32
    with pytest.raises(StorageError, match=f"expected {wrong}, actual {hashlib.sha256(data).hexdigest()}"):
        store.download("pkg/m.tar.gz", dest, expected_sha256=wrong.upper())
    assert not dest.exists()
    assert not part_path(dest).exists()


def test_recorded_sha256_is_checked_when_caller_gives_none(
    store: ObjectStore, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    server = request.getfixturevalue("s3_server") if isinstance(store, S3Store) else None
    record_wrong_sha256(store, "pkg/corrupt.bin", payload(50_000), server)
    dest = tmp_path / "corrupt.bin"
    with pytest.raises(StorageError, match="sha256 mismatch"):
        store.download("pkg/corrupt.bin", dest)
    assert not dest.exists()


def test_object_over_max_bytes_is_refused(store: ObjectStore, tmp_path: Path) -> None:
    store.put_bytes("big.bin", payload(10_001))
    dest = tmp_path / "big.bin"
    with pytest.raises(StorageError, match="more than the limit of 10000"):
        store.download("big.bin", dest, max_bytes=10_000)
    assert not dest.exists()
    assert not part_path(dest).exists()
    store.download("big.bin", dest, max_bytes=10_001)
    assert dest.stat().st_size == 10_001


def test_missing_object_download_is_not_found(store: ObjectStore, tmp_path: Path) -> None:
    with pytest.raises(ObjectNotFoundError, match="no object at"):
        store.download("absent.bin", tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_malformed_expected_sha256_is_refused(store: ObjectStore, tmp_path: Path) -> None:
    store.put_bytes("k", b"x")
    with pytest.raises(StorageError, match="invalid sha256"):
        store.download("k", tmp_path / "k", expected_sha256="abc")


def test_interrupted_download_resumes_from_its_part_file(store: ObjectStore, tmp_path: Path) -> None:
    data = payload(4 * MIB + 77, seed=11)
    store.put_bytes("pkg/resume.bin", data)
    dest = tmp_path / "resume.bin"

    def drop_after_first_chunk(done: int) -> None:
        raise _Interrupt(done)

    with pytest.raises(_Interrupt):
        store.download("pkg/resume.bin", dest, progress=drop_after_first_chunk)
    kept = part_path(dest).stat().st_size
    assert 0 < kept < len(data)
    assert not dest.exists()

    seen: list[int] = []
    store.download(
        "pkg/resume.bin", dest, expected_sha256=hashlib.sha256(data).hexdigest(), progress=seen.append
    )
    assert dest.read_bytes() == data
    assert seen[0] == kept  # the first report is the resumed prefix: those bytes were not fetched again
    assert seen[-1] == len(data)
    assert not part_path(dest).exists()


def test_part_file_of_an_older_version_is_discarded(store: ObjectStore, tmp_path: Path) -> None:
    store.put_bytes("pkg/v.bin", payload(3 * MIB, seed=1))
    dest = tmp_path / "v.bin"

    def interrupt(done: int) -> None:
        raise _Interrupt(done)

    with pytest.raises(_Interrupt):
        store.download("pkg/v.bin", dest, progress=interrupt)
    assert part_path(dest).exists()
    newer = payload(3 * MIB, seed=2)
    store.put_bytes("pkg/v.bin", newer)
    seen: list[int] = []
    store.download("pkg/v.bin", dest, progress=seen.append)
    assert dest.read_bytes() == newer
    assert seen[0] <= MIB  # started from zero, not from the stale prefix


def test_part_file_without_provenance_resumes_only_under_a_known_sha256(
    store: ObjectStore, tmp_path: Path
) -> None:
    data = payload(2 * MIB, seed=5)
    store.put_bytes("pkg/p.bin", data)
    dest = tmp_path / "p.bin"
    part_path(dest).write_bytes(b"garbage that is not the object's prefix")  # no recorded etag
    store.download("pkg/p.bin", dest)  # resumed (the recorded sha256 guards it), failed, fetched whole
    assert dest.read_bytes() == data
    assert not part_path(dest).exists()
