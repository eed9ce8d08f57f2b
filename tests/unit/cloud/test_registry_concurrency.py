"""Concurrent writers never lose a version or a status change, on a folder and on a real S3 server."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from edgeinspect.core.package import load_private_key, write_keypair
from edgeinspect_cloud.registry import APPROVED, REJECTED, ModelRegistry, ModelVersion

from tests.unit.cloud.packaging_helpers import tiny_package

RegistryFactory = Callable[[], ModelRegistry]
THREADS = 6
PER_THREAD = 3


@pytest.fixture(params=["file", "s3"])
def registry_factory(request: pytest.FixtureRequest, tmp_path: Path) -> RegistryFactory:
    """A new registry client on the same store per call (one per thread, like separate processes)."""
    if request.param == "file":
        url = (tmp_path / "registry").as_uri()
        return lambda: ModelRegistry.open(url)
    endpoint, bucket = request.getfixturevalue("s3_bucket")
    return lambda: ModelRegistry.open(f"s3://{bucket}/registry", endpoint_url=endpoint, max_attempts=3)


@pytest.fixture
def key(tmp_path: Path) -> Ed25519PrivateKey:
    private_path, _ = write_keypair(tmp_path / "keys")
    return load_private_key(private_path)


def _run_threads(target: Callable[[int], None], count: int) -> None:
    barrier = threading.Barrier(count)
    errors: list[BaseException] = []

    def body(index: int) -> None:
        try:
            barrier.wait()
            target(index)
        except BaseException as exc:  # collected and re-raised in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=body, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors


def test_concurrent_registrations_lose_no_version(
    registry_factory: RegistryFactory, key: Ed25519PrivateKey, tmp_path: Path
) -> None:
    results: list[ModelVersion] = []
    lock = threading.Lock()

    def register_some(index: int) -> None:
        registry = registry_factory()
        for round_ in range(PER_THREAD):
            workdir = tmp_path / f"t{index}-r{round_}"
            built: list[int] = []

            def build(n: int, workdir: Path = workdir, built: list[int] = built) -> Path:
                built.append(n)
                return tiny_package(workdir / str(n), key, "defect-cls", n)

            mv = registry.register(
                "defect-cls", build, created_by=f"thread-{index}", description=f"{index}/{round_}"
            )
            with lock:
                results.append(mv)

    _run_threads(register_some, THREADS)

    total = THREADS * PER_THREAD
    registry = registry_factory()
    stored = registry.versions("defect-cls")
    assert [mv.version for mv in stored] == list(range(1, total + 1))
    assert sorted(mv.version for mv in results) == list(range(1, total + 1))
    by_version = {mv.version: mv for mv in stored}
    for mine in results:  # each caller's record is the one stored under its number
        theirs = by_version[mine.version].registration
        assert theirs.description == mine.registration.description
        assert theirs.package.sha256 == mine.registration.package.sha256
        info = registry.store.head(theirs.package.key)
        assert info is not None and info.size == theirs.package.size


def test_concurrent_status_changes_are_all_recorded(
    registry_factory: RegistryFactory, key: Ed25519PrivateKey, tmp_path: Path
) -> None:
    registry = registry_factory()
    registry.register("defect-seg", lambda n: tiny_package(tmp_path / "pkg", key, "defect-seg", n))

    def decide(index: int) -> None:
        client = registry_factory()
        if index % 2:
            client.reject("defect-seg", 1, by=f"user-{index}", comment=f"decision {index}")
        else:
            client.approve("defect-seg", 1, by=f"user-{index}", comment=f"decision {index}")

    _run_threads(decide, THREADS)

    mv = registry.get("defect-seg", 1)
    decisions = mv.history[1:]
    assert sorted(change.comment for change in decisions) == sorted(f"decision {i}" for i in range(THREADS))
    for change in decisions:
        index = int(change.by.split("-")[1])
        assert change.status == (REJECTED if index % 2 else APPROVED)
    assert mv.status == decisions[-1].status
