"""Failures a factory engineer can act on: unreachable endpoints, missing buckets, bad URLs and options."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from edgeinspect.core.errors import StorageError
from edgeinspect.core.storage import LocalStore, ObjectStore, S3Store, open_store

from tests.fixtures.s3_server import S3Server
from tests.fixtures.servers import free_port

FAST_FAIL = {
    "access_key_id": "test",
    "secret_access_key": "test",
    "max_attempts": 1,
    "connect_timeout": 1.0,
    "read_timeout": 2.0,
}


def _every_operation(store: ObjectStore, tmp_path: Path) -> list[Callable[[], object]]:
    src = tmp_path / "src.bin"
    src.write_bytes(b"payload")
    return [
        lambda: store.put_bytes("k", b"x"),
        lambda: store.put_bytes_if_absent("k", b"x"),
        lambda: store.put_file("k", src),
        lambda: store.get_bytes("k"),
        lambda: store.head("k"),
        lambda: store.exists("k"),
        lambda: list(store.list()),
        lambda: store.delete("k"),
        lambda: store.download("k", tmp_path / "dest"),
    ]


def test_unreachable_endpoint_says_to_check_endpoint_and_network(tmp_path: Path) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    store = open_store("s3://edge-bucket/line-1", endpoint_url=endpoint, **FAST_FAIL)
    for operation in _every_operation(store, tmp_path):
        with pytest.raises(StorageError) as caught:
            operation()
        assert f"cannot reach the S3 endpoint {endpoint}" in caught.value.message
        assert "check the endpoint URL" in caught.value.hint
    assert not (tmp_path / "dest").exists()


def test_stopped_server_fails_clearly_and_works_again_after_restart(
    s3_server: S3Server, s3_bucket: tuple[str, str], tmp_path: Path
) -> None:
    endpoint, bucket = s3_bucket
    store = open_store(f"s3://{bucket}/p", endpoint_url=endpoint, **FAST_FAIL)
    store.put_bytes("k", b"before")
    s3_server.stop()
    try:
        with pytest.raises(StorageError, match="cannot reach the S3 endpoint"):
            store.get_bytes("k")
    finally:
        s3_server.start()
    s3_server.client().create_bucket(Bucket=bucket)  # moto keeps nothing across a restart
    assert store.head("k") is None
    store.put_bytes("k", b"after")
    assert store.get_bytes("k") == b"after"


def test_missing_bucket_is_named(s3_env: S3Server) -> None:
    store = open_store("s3://no-such-bucket-ei/p", endpoint_url=s3_env.endpoint_url, **FAST_FAIL)
    with pytest.raises(StorageError, match="bucket of s3://no-such-bucket-ei/p/k does not exist"):
        store.put_bytes("k", b"x")


def test_file_store_cannot_hold_an_object_and_a_folder_of_the_same_name(tmp_path: Path) -> None:
    store = open_store(tmp_path.as_uri())
    store.put_bytes("a", b"object")
    with pytest.raises(StorageError, match="both an object and a folder"):
        store.put_bytes("a/b", b"nested")
    store.put_bytes("c/d", b"nested")
    with pytest.raises(StorageError, match="both an object and a folder"):
        store.put_bytes("c", b"object")
    assert store.get_bytes("a") == b"object"
    assert [o.key for o in store.list()] == ["a", "c/d"]


def test_file_store_leaves_no_temp_files_behind(tmp_path: Path) -> None:
    store = open_store(tmp_path.as_uri())
    store.put_bytes("x/y", b"1")
    assert store.put_bytes_if_absent("x/y", b"2") is False
    assert sorted(p.name for p in (tmp_path / "x").iterdir()) == ["y"]


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://host/x", "unsupported storage URL"),
        ("file://relative/path", "names host 'relative'"),
        ("s3:///no-bucket", "needs a bucket"),
        ("s3://bucket/a/../b", "invalid list prefix"),
        ("s3://bucket/p?x=1", "query or fragment"),
    ],
)
def test_bad_store_urls_are_refused(url: str, message: str) -> None:
    with pytest.raises(StorageError, match=message):
        open_store(url)


def test_open_store_picks_the_backend_from_the_scheme(tmp_path: Path) -> None:
    local = open_store((tmp_path / "with space").as_uri(), endpoint_url="http://127.0.0.1:1")
    assert isinstance(local, LocalStore) and local.root == tmp_path / "with space"
    remote = open_store("s3://bucket/line-1/", region="eu-west-1", **FAST_FAIL)
    assert isinstance(remote, S3Store)
    assert (remote.bucket, remote.prefix, remote.url) == ("bucket", "line-1/", "s3://bucket/line-1")


def test_unknown_options_and_too_small_parts_are_refused() -> None:
    with pytest.raises(StorageError, match="unknown storage option"):
        open_store("s3://bucket/p", endpiont_url="http://127.0.0.1:1")
    with pytest.raises(StorageError, match="at least 5242880 bytes"):
        open_store("s3://bucket/p", multipart_chunksize=1 << 20, **FAST_FAIL)
