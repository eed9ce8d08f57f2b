"""The behaviours every object store promises, run against the folder store and the real S3 server."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from edgeinspect.core.errors import StorageError
from edgeinspect.core.storage import LocalStore, ObjectNotFoundError, ObjectStore, S3Store

from tests.unit.core.storage.conftest import StoreFactory, payload


def test_put_then_get_returns_the_same_bytes_and_records_sha256(store: ObjectStore) -> None:
    data = payload(70_000)
    written = store.put_bytes("models/a.bin", data, content_type="application/x-test")
    assert written.key == "models/a.bin"
    assert written.size == len(data)
    assert written.sha256 == hashlib.sha256(data).hexdigest()
    assert store.get_bytes("models/a.bin") == data
    head = store.head("models/a.bin")
    assert head is not None
    assert (head.size, head.etag, head.sha256) == (len(data), written.etag, written.sha256)
    assert head.content_type == "application/x-test"
    assert head.last_modified is not None


def test_missing_object_is_none_on_head_and_not_found_on_get(store: ObjectStore) -> None:
    assert store.head("nothing/here") is None
    assert not store.exists("nothing/here")
    with pytest.raises(ObjectNotFoundError, match=r"no object at .*nothing/here"):
        store.get_bytes("nothing/here")


def test_exists_after_put_and_not_after_delete(store: ObjectStore) -> None:
    store.put_bytes("k", b"x")
    assert store.exists("k")
    store.delete("k")
    assert not store.exists("k")
    store.delete("k")  # deleting a missing object is not an error


def test_overwrite_replaces_content_and_changes_etag(store: ObjectStore) -> None:
    first = store.put_bytes("k", b"one")
    second = store.put_bytes("k", b"two, longer")
    assert store.get_bytes("k") == b"two, longer"
    assert first.etag != second.etag


def test_list_yields_keys_under_prefix_in_key_order(store: ObjectStore) -> None:
    for key in ["b/1", "a/2", "a/sub/x", "a/1", "ab"]:
        store.put_bytes(key, key.encode())
    assert [o.key for o in store.list()] == ["a/1", "a/2", "a/sub/x", "ab", "b/1"]
    assert [o.key for o in store.list("a/")] == ["a/1", "a/2", "a/sub/x"]
    assert [o.key for o in store.list("a")] == ["a/1", "a/2", "a/sub/x", "ab"]
    assert [o.key for o in store.list("a/s")] == ["a/sub/x"]
    assert list(store.list("zzz/")) == []
    sizes = {o.key: o.size for o in store.list()}
    assert sizes["a/sub/x"] == len(b"a/sub/x")


def test_list_follows_pages(store_factory: StoreFactory) -> None:
    store = store_factory(page_size=2)
    keys = [f"captures/{i:03d}.png" for i in range(7)]
    for key in keys:
        store.put_bytes(key, b"p")
    assert [o.key for o in store.list("captures/")] == keys


def test_prefixes_isolate_stores_sharing_a_bucket_or_folder(store_factory: StoreFactory) -> None:
    left, right = store_factory("line-1"), store_factory("line-2")
    left.put_bytes("frame", b"L")
    assert right.head("frame") is None
    assert [o.key for o in left.list()] == ["frame"]
    assert list(right.list()) == []


def test_url_for_names_the_object(store: ObjectStore) -> None:
    url = store.url_for("a/b.tar.gz")
    if isinstance(store, S3Store):
        assert url == f"s3://{store.bucket}/pre/fix/a/b.tar.gz"
    else:
        assert isinstance(store, LocalStore)
        assert url == (store.root / "a/b.tar.gz").as_uri()
    assert url.startswith(store.url + "/")


def test_put_bytes_if_absent_never_replaces_an_existing_object(store: ObjectStore) -> None:
    assert store.put_bytes_if_absent("registry/m/1.json", b"first") is True
    assert store.put_bytes_if_absent("registry/m/1.json", b"second") is False
    assert store.get_bytes("registry/m/1.json") == b"first"
    info = store.head("registry/m/1.json")
    assert info is not None and info.sha256 == hashlib.sha256(b"first").hexdigest()


def test_put_bytes_if_absent_race_has_exactly_one_winner(store: ObjectStore) -> None:
    for round_no in range(10):
        key = f"registry/race/{round_no}.json"
        won = _race_two_writers(store, key)
        winners = [i for i, ok in won.items() if ok]
        assert len(winners) == 1, won
        assert store.get_bytes(key) == f"writer-{winners[0]}".encode()


def _race_two_writers(store: ObjectStore, key: str) -> dict[int, bool]:
    """Two threads released together by a barrier, each trying to create ``key``."""
    barrier = threading.Barrier(2)
    won: dict[int, bool] = {}
    errors: list[BaseException] = []

    def writer(idx: int) -> None:
        barrier.wait()
        try:
            won[idx] = store.put_bytes_if_absent(key, f"writer-{idx}".encode())
        except BaseException as exc:  # re-raised below; a thread must not die silently
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return won


BAD_KEYS = [
    "",
    "/abs",
    "a/../b",
    "..",
    ".",
    "a//b",
    "a/",
    "a/./b",
    "a\\b",
    "a\x00b",
    "tab\tkey",
    ".ei-tmp-x",
    "x" * 1025,
]


@pytest.mark.parametrize("key", BAD_KEYS)
def test_invalid_keys_are_refused_before_any_io(
    store: ObjectStore, key: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    dest = tmp_path_factory.mktemp("dl") / "out"
    calls: list[Callable[[], object]] = [
        lambda: store.put_bytes(key, b"x"),
        lambda: store.put_bytes_if_absent(key, b"x"),
        lambda: store.get_bytes(key),
        lambda: store.head(key),
        lambda: store.delete(key),
        lambda: store.url_for(key),
        lambda: store.download(key, dest),
    ]
    for call in calls:
        with pytest.raises(StorageError, match="invalid object key"):
            call()
    assert list(store.list()) == []


@pytest.mark.parametrize("prefix", ["/a", "a/../b", "a//"])
def test_invalid_list_prefixes_are_refused(store: ObjectStore, prefix: str) -> None:
    with pytest.raises(StorageError, match="invalid list prefix"):
        list(store.list(prefix))


def test_put_file_of_a_missing_source_names_the_path(store: ObjectStore, tmp_path: Path) -> None:
    with pytest.raises(StorageError, match=r"cannot read .*nowhere\.bin"):
        store.put_file("k", tmp_path / "nowhere.bin")
    assert not store.exists("k")
