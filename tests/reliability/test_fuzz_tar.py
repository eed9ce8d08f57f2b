"""Property tests of unpacking an untrusted tar.gz: whatever the members, either every file lands inside
the destination with its exact bytes, or a ``PackageError`` and nothing is left behind; never a write
outside, never another exception."""

from __future__ import annotations

import io
import tarfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from edgeinspect.core.errors import PackageError
from edgeinspect.core.package import safe_extract
from hypothesis import given
from hypothesis import strategies as st

from tests.reliability.hostile import FUZZ

NAMES = st.sampled_from(
    ["a", "b/c", "./d", "..", "../e", "f/../../g", "/abs", "h\\i", "j\x00", "", ".", "k//l", "C:x", "m/"]
) | st.text(alphabet="abc./", min_size=1, max_size=8)
KINDS = st.sampled_from(
    [tarfile.REGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.FIFOTYPE]
)


@dataclass(frozen=True)
class Member:
    name: str
    kind: bytes
    data: bytes


MEMBERS = st.lists(st.builds(Member, NAMES, KINDS, st.binary(max_size=64)), max_size=6)


def _archive(path: Path, members: list[Member]) -> Path:
    with tarfile.open(path, "w:gz", format=tarfile.PAX_FORMAT) as archive:
        for member in members:
            info = tarfile.TarInfo(member.name)
            info.type = member.kind
            if member.kind in (tarfile.SYMTYPE, tarfile.LNKTYPE):
                info.linkname = "../outside"
            if member.kind == tarfile.REGTYPE:
                info.size = len(member.data)
                archive.addfile(info, io.BytesIO(member.data))
            else:
                archive.addfile(info)
    return path


def _check(tmp: Path, archive: Path) -> None:
    out = tmp / "out"
    before = {p for p in tmp.rglob("*")}
    try:
        safe_extract(archive, out / "pkg", 1 << 20, 1 << 22, 16)
    except PackageError as exc:
        assert len(exc.message) < 2000
        assert not out.exists() or list(out.iterdir()) == []
    else:
        for path in (out / "pkg").rglob("*"):
            assert not path.is_symlink() and (path.is_file() or path.is_dir())
    created = {p for p in tmp.rglob("*")} - before
    assert all(p == out or out in p.parents for p in created), created


@FUZZ
@given(MEMBERS)
def test_any_members_unpack_inside_or_are_refused(
    tmp_path_factory: pytest.TempPathFactory, members: list[Member]
) -> None:
    tmp = tmp_path_factory.mktemp("tar")
    _check(tmp, _archive(tmp / "p.tar.gz", members))


@FUZZ
@given(MEMBERS, st.data())
def test_a_truncated_or_corrupted_archive_is_refused_cleanly(
    tmp_path_factory: pytest.TempPathFactory, members: list[Member], data: st.DataObject
) -> None:
    tmp = tmp_path_factory.mktemp("tar")
    raw = bytearray(_archive(tmp / "p.tar.gz", members).read_bytes())
    if data.draw(st.booleans()):
        raw = raw[: data.draw(st.integers(0, len(raw)))]
    elif raw:
        at = data.draw(st.integers(0, len(raw) - 1))
        raw[at] ^= data.draw(st.integers(1, 255))
    (tmp / "p.tar.gz").write_bytes(bytes(raw))
    _check(tmp, tmp / "p.tar.gz")
