"""A full disk: refused up front when known, and a clean failure when ENOSPC strikes mid-write.

The real test mounts a 2 MiB tmpfs as the model folder (the test machines run as root) and fills it,
so the manager meets a genuinely full filesystem. Where mounting is not possible the tmpfs test is
skipped and says so; the free-space check itself is then still exercised by the portable test below,
through the ``EI_DISK_RESERVE_BYTES`` setting (space the manager must leave free).
"""

from __future__ import annotations

import json
import os
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.model_manager.harness import DeviceKit

PAGE = 4096


@pytest.fixture
def small_disk(kit: DeviceKit, tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs mounted for this test (unmounted after the manager stopped)."""
    mount_point = tmp_path / "small-disk"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount_point)], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        pytest.skip(
            f"cannot mount a tmpfs here ({mounted.stderr.strip()}); the full-disk behaviour is then covered "
            "only by test_a_package_larger_than_the_free_space_is_refused_before_download"
        )
    try:
        yield mount_point
    finally:
        for manager in kit.managers:
            manager.stop()
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def free_bytes(folder: Path) -> int:
    stats = os.statvfs(folder)
    return stats.f_bavail * stats.f_frsize


def fill_until_free(folder: Path, target: int) -> Path:
    """Grow a filler file until about ``target`` bytes remain free."""
    filler = folder / "filler"
    with open(filler, "ab") as fh:
        while (excess := free_bytes(folder) - target) >= PAGE:
            fh.write(b"\0" * min(excess // PAGE * PAGE, 1 << 20))
            fh.flush()
            os.fsync(fh.fileno())
    return filler


def unpacked_size(tar: Path) -> int:
    with tarfile.open(tar) as archive:
        return sum(-(-m.size // PAGE) * PAGE for m in archive.getmembers() if m.isfile())


def test_a_disk_that_fills_up_fails_the_job_cleanly(kit: DeviceKit, small_disk: Path) -> None:
    kit.env["EI_MODEL_DIR"] = str(small_disk / "models")
    kit.start_manager()
    assert kit.deploy("job-1", kit.publish(kit.package("cls", "1"))).status == "SUCCEEDED"

    # ENOSPC mid-write: this package passes the free-space check (3x its size), but its model compresses
    # ~10x, so the unpack runs out of space half way.
    dense = kit.package("cls", "2", busy_iterations=1)
    size = dense.stat().st_size
    target = 3 * size + 4 * PAGE
    assert unpacked_size(dense) > target + size, "the test package must not fit once unpacked"
    fill_until_free(small_disk, target)
    job = kit.deploy("job-2", kit.publish(dense))

    assert job.status == "FAILED"
    assert job.status_details["reason"].startswith("disk full while unpacking"), job.status_details
    assert kit.serving() == "cls:1" and "cls:2" not in kit.loaded()
    assert kit.version_dirs("cls") == ["1"] and kit.staging() == []  # no partial or temp folder left
    state = json.loads((small_disk / "models" / "state.json").read_text())  # intact and still valid
    assert list(state["versions"]) == ["cls:1"] and state["aliases"]["defect-cls"]["version"] == "1"
    assert free_bytes(small_disk) >= target - PAGE  # everything the job wrote was given back

    # Known in advance: less than 3x the package is free, so nothing is even downloaded.
    small = kit.publish(kit.package("cls", "3"))
    fill_until_free(small_disk, 2 * small.size)
    refused = kit.deploy("job-3", small)

    assert refused.status == "FAILED"
    assert refused.status_details["reason"].startswith("not enough disk space"), refused.status_details
    assert refused.status_details["stage"] == "downloading" and kit.staging() == []
    assert kit.serving() == "cls:1"


def test_a_package_larger_than_the_free_space_is_refused_before_download(kit: DeviceKit) -> None:
    """Portable: the reserve setting makes any disk too small, without mounting anything."""
    manager = kit.start_manager()
    assert kit.deploy("job-1", kit.publish(kit.package("cls", "1"))).status == "SUCCEEDED"
    manager.stop()
    kit.start_manager(disk_reserve_bytes=1 << 60)

    job = kit.deploy("job-2", kit.publish(kit.package("cls", "2")))

    assert job.status == "FAILED"
    assert job.status_details["reason"].startswith("not enough disk space in "), job.status_details
    assert kit.serving() == "cls:1" and kit.version_dirs("cls") == ["1"] and kit.staging() == []
