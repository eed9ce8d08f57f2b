"""Unpacking untrusted archives: every unsafe member refused by name, nothing left behind on failure."""

from __future__ import annotations

import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest
from edgeinspect.core.errors import PackageError
from edgeinspect.core.package import safe_extract

from tests.unit.core.package.helpers import add_bytes, add_special

Build = Callable[[tarfile.TarFile], None]
LIMITS = {"max_member_bytes": 1000, "max_total_bytes": 1500, "max_members": 5}


def _tar(tmp_path: Path, build: Build) -> Path:
    path = tmp_path / "evil.tar.gz"
    with tarfile.open(path, "w:gz") as archive:
        add_bytes(archive, "manifest.json", b"{}")
        build(archive)
    return path


def _assert_refused(tmp_path: Path, build: Build, problem: str) -> None:
    dest = tmp_path / "unpacked" / "pkg"
    with pytest.raises(PackageError, match=problem):
        safe_extract(_tar(tmp_path, build), dest, **LIMITS)
    assert not dest.exists()
    assert list(dest.parent.iterdir()) == [], "the temporary folder must be removed"


def test_plain_files_and_folders_unpack_with_safe_modes(tmp_path: Path) -> None:
    def build(archive: tarfile.TarFile) -> None:
        add_special(archive, "golden", tarfile.DIRTYPE)
        add_bytes(archive, "./golden/input.npy", b"x" * 10)

    dest = safe_extract(_tar(tmp_path, build), tmp_path / "pkg", **LIMITS)
    assert (dest / "manifest.json").read_bytes() == b"{}"
    assert (dest / "golden" / "input.npy").read_bytes() == b"x" * 10
    assert (dest / "golden" / "input.npy").stat().st_mode & 0o777 == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["evil.tar.gz", "pkg"]


def test_dotdot_member_is_refused(tmp_path: Path) -> None:
    _assert_refused(
        tmp_path,
        lambda a: add_bytes(a, "golden/../../escape.txt", b"x"),
        r"'golden/\.\./\.\./escape\.txt' has a '\.\.' path",
    )


def test_absolute_member_is_refused(tmp_path: Path) -> None:
    _assert_refused(
        tmp_path, lambda a: add_bytes(a, "/etc/cron.d/evil", b"x"), "'/etc/cron.d/evil' has an absolute path"
    )


def test_symlink_member_is_refused(tmp_path: Path) -> None:
    _assert_refused(
        tmp_path,
        lambda a: add_special(a, "model.onnx", tarfile.SYMTYPE, "/etc/passwd"),
        "'model.onnx' is a link",
    )


def test_hardlink_member_is_refused(tmp_path: Path) -> None:
    _assert_refused(
        tmp_path, lambda a: add_special(a, "copy", tarfile.LNKTYPE, "manifest.json"), "'copy' is a link"
    )


@pytest.mark.parametrize("kind", [tarfile.CHRTYPE, tarfile.BLKTYPE, tarfile.FIFOTYPE])
def test_device_and_fifo_members_are_refused(tmp_path: Path, kind: bytes) -> None:
    _assert_refused(
        tmp_path, lambda a: add_special(a, "dev", kind), "'dev' is a device, fifo or other special file"
    )


def test_duplicate_member_is_refused(tmp_path: Path) -> None:
    _assert_refused(
        tmp_path, lambda a: add_bytes(a, "./manifest.json", b"{}"), "'./manifest.json' appears twice"
    )


def test_file_folder_clash_is_refused(tmp_path: Path) -> None:
    _assert_refused(
        tmp_path, lambda a: add_bytes(a, "manifest.json/x", b"{}"), "inside 'manifest.json', which is a file"
    )


def test_oversized_member_is_refused_before_writing(tmp_path: Path) -> None:
    _assert_refused(
        tmp_path, lambda a: add_bytes(a, "model.onnx", b"x" * 1001), "'model.onnx' is 1001 bytes, over"
    )


def test_oversized_total_is_refused(tmp_path: Path) -> None:
    def build(archive: tarfile.TarFile) -> None:
        add_bytes(archive, "a", b"x" * 900)
        add_bytes(archive, "b", b"x" * 900)

    _assert_refused(tmp_path, build, "'b' brings the total to 1802 bytes")


def test_too_many_members_are_refused(tmp_path: Path) -> None:
    def build(archive: tarfile.TarFile) -> None:
        for index in range(5):
            add_bytes(archive, f"f{index}", b"")

    _assert_refused(tmp_path, build, "'f4' exceeds the limit of 5 members")


def test_truncated_archive_is_refused_and_leaves_nothing(tmp_path: Path) -> None:
    path = _tar(tmp_path, lambda a: add_bytes(a, "model.onnx", bytes(range(256)) * 3))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    dest = tmp_path / "unpacked" / "pkg"
    with pytest.raises(PackageError, match="truncated or not a gzip-compressed tar"):
        safe_extract(path, dest, **LIMITS)
    assert not dest.exists()
    assert list(dest.parent.iterdir()) == []


def test_missing_archive_and_existing_destination_are_refused(tmp_path: Path) -> None:
    with pytest.raises(PackageError, match="does not exist"):
        safe_extract(tmp_path / "nope.tar.gz", tmp_path / "pkg", **LIMITS)
    (tmp_path / "pkg").mkdir()
    with pytest.raises(PackageError, match="already exists"):
        safe_extract(_tar(tmp_path, lambda a: None), tmp_path / "pkg", **LIMITS)
