"""Uploading a file bigger than the multipart threshold (S3 parts are at least 5 MiB)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from edgeinspect.core.storage import S3Store

from tests.unit.core.storage.conftest import StoreFactory, payload

MIB = 1 << 20


def test_file_above_threshold_uploads_in_parts_and_round_trips(
    store_factory: StoreFactory, tmp_path: Path
) -> None:
    store = store_factory(multipart_threshold=5 * MIB, multipart_chunksize=5 * MIB, max_concurrency=2)
    data = payload(11 * MIB + 5, seed=3)
    src = tmp_path / "model.tar.gz"
    src.write_bytes(data)
    seen: list[int] = []
    info = store.put_file("packages/model.tar.gz", src, progress=seen.append, content_type="application/gzip")
    digest = hashlib.sha256(data).hexdigest()
    assert (info.size, info.sha256, info.content_type) == (len(data), digest, "application/gzip")
    assert seen == sorted(seen) and seen[-1] == len(data)
    if isinstance(store, S3Store):
        assert info.etag.endswith("-3")  # S3's ETag of a 3-part multipart upload
    dest = tmp_path / "back.tar.gz"
    store.download("packages/model.tar.gz", dest, expected_sha256=digest)
    assert dest.read_bytes() == data


def test_small_file_uploads_in_one_request(store_factory: StoreFactory, tmp_path: Path) -> None:
    store = store_factory(multipart_threshold=5 * MIB, multipart_chunksize=5 * MIB)
    src = tmp_path / "small.json"
    src.write_bytes(b"{}")
    info = store.put_file("small.json", src)
    assert "-" not in info.etag or not isinstance(store, S3Store)
    assert store.get_bytes("small.json") == b"{}"
