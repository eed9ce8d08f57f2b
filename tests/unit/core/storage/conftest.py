"""One parametrized ``store`` for the contract suite: a folder in ``tmp_path`` and a bucket on the real
S3 server (moto subprocess, or ``EI_TEST_S3_URL``). Every test that takes ``store`` runs against both."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from edgeinspect.core.storage import LocalStore, ObjectStore, S3Store, open_store

from tests.fixtures.s3_server import S3Server

StoreFactory = Callable[..., ObjectStore]
S3_TEST_OPTIONS: dict[str, Any] = {"max_attempts": 2, "connect_timeout": 2.0, "read_timeout": 20.0}


@pytest.fixture(params=["file", "s3"])
def store_factory(request: pytest.FixtureRequest, tmp_path: Path) -> StoreFactory:
    """Builds stores of one backend with extra options (e.g. a small multipart threshold)."""
    if request.param == "file":
        root = tmp_path / "store"
        return lambda prefix="pre/fix", **options: open_store((root / prefix).as_uri(), **options)
    endpoint, bucket = request.getfixturevalue("s3_bucket")
    return lambda prefix="pre/fix", **options: open_store(
        f"s3://{bucket}/{prefix}", endpoint_url=endpoint, **{**S3_TEST_OPTIONS, **options}
    )


@pytest.fixture
def store(store_factory: StoreFactory) -> ObjectStore:
    """A fresh, empty store of each backend."""
    return store_factory()


def payload(size: int, seed: int = 7) -> bytes:
    """Deterministic pseudo-random bytes (incompressible, so sizes mean what they say)."""
    return random.Random(seed).randbytes(size)


def record_wrong_sha256(store: ObjectStore, key: str, data: bytes, server: S3Server | None) -> None:
    """Store ``data`` at ``key`` while the recorded sha256 says something else (a corrupted object)."""
    wrong = "0" * 64
    if isinstance(store, S3Store):
        assert server is not None
        server.client().put_object(
            Bucket=store.bucket, Key=store.prefix + key, Body=data, Metadata={"sha256": wrong}
        )
        return
    assert isinstance(store, LocalStore)
    store.put_bytes(key, data)
    with open(store.root / key, "r+b") as fh:  # same inode: the recorded (xattr) sha256 stays the old one
        fh.write(bytes([data[0] ^ 0xFF]))
