"""Unpack an untrusted tar.gz without letting it write outside its folder or fill the disk.

A package arrives from the network before its signature is checked (the signature lives inside
it), so extraction is the first place an attacker or a corrupt download can hurt the device. Only
plain files and folders with plain relative names are accepted; sizes and counts are capped from
the headers before any data is written, and again as bytes are written; the total may not exceed a
multiple of the compressed size (a 1 MB archive that expands to 1 GiB is refused from its first
header, before any byte is written); and the result appears under its final name in one
``rename`` so that no reader ever sees a half-unpacked folder.
"""

from __future__ import annotations

import os
import shutil
import tarfile
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO

from edgeinspect.core.errors import PackageError

_COPY_CHUNK = 1 << 20


@dataclass(frozen=True)
class UnpackLimits:
    """Caps applied while unpacking; the defaults fit a large vision model with room to spare."""

    max_member_bytes: int = 4 << 30
    max_total_bytes: int = 8 << 30
    max_members: int = 256
    max_ratio: int = 100
    """Unpacked bytes per compressed byte: ONNX weights compress ~1.1x, a bomb 1000x."""
    ratio_floor_bytes: int = 64 << 20
    """The ratio applies above this many bytes, so small packages of zeros still unpack."""
    name_caps: tuple[tuple[str, int], ...] = ()
    """Tighter caps for members by name (``manifest.json`` is a few KB and is read before trust)."""

    def total_for(self, compressed_bytes: int) -> int:
        """The total unpacked size allowed for an archive of ``compressed_bytes``."""
        return min(self.max_total_bytes, max(self.ratio_floor_bytes, self.max_ratio * compressed_bytes))


def safe_extract(
    tar_path: str | Path,
    dest_dir: str | Path,
    max_member_bytes: int,
    max_total_bytes: int,
    max_members: int,
    *,
    max_ratio: int = UnpackLimits.max_ratio,
    ratio_floor_bytes: int = UnpackLimits.ratio_floor_bytes,
    name_caps: tuple[tuple[str, int], ...] = (),
) -> Path:
    """Extract ``tar_path`` (gzip-compressed tar) into ``dest_dir``, which must not exist yet.

    Rejects, with a ``PackageError`` naming the member and why: absolute paths, ``..`` components,
    links, devices, fifos, duplicate names, members over ``max_member_bytes`` (or their ``name_caps``),
    more than ``max_total_bytes`` in all or more than ``max_ratio`` times the archive's size (above
    ``ratio_floor_bytes``), more than ``max_members`` entries, and unreadable (truncated) archives.
    Files get mode 0644 and folders 0755 whatever the archive says. On any failure nothing is left
    at ``dest_dir`` and the temporary folder beside it is removed.
    """
    dest = Path(dest_dir)
    if dest.exists() or dest.is_symlink():
        raise PackageError(f"cannot unpack into {dest}: it already exists", hint="unpack into a fresh folder")
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.unpacking-", dir=dest.parent))
    try:
        limits = UnpackLimits(
            max_member_bytes, max_total_bytes, max_members, max_ratio, ratio_floor_bytes, name_caps
        )
        _extract_all(Path(tar_path), staging, limits)
        os.rename(staging, dest)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    fsync_dir(dest.parent)
    return dest


def _extract_all(tar_path: Path, root: Path, limits: UnpackLimits) -> None:
    """Check and write every member into ``root``, turning archive read errors into ``PackageError``."""
    try:
        with tarfile.open(tar_path, mode="r:gz") as archive:
            _Extractor(tar_path, root, limits).run(archive)
    except PackageError:
        raise
    except FileNotFoundError as exc:
        raise PackageError(f"package {tar_path} does not exist", hint="check the download path") from exc
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        raise PackageError(
            f"cannot read package {tar_path.name}: it is truncated or not a gzip-compressed tar ({exc})",
            hint="download the package again; if it persists, rebuild it",
        ) from exc


class _Extractor:
    """Per-archive state: names seen so far and bytes written, checked member by member."""

    def __init__(self, tar_path: Path, root: Path, limits: UnpackLimits) -> None:
        self.tar_name = tar_path.name
        self.root = root
        self.limits = limits
        self.seen: dict[str, bool] = {}  # normalised name -> is a directory
        self.total = 0
        self.written = 0
        self.count = 0
        self.max_total = limits.total_for(tar_path.stat().st_size)
        self.name_caps = dict(limits.name_caps)

    def reject(self, member: tarfile.TarInfo, why: str) -> PackageError:
        return PackageError(
            f"unsafe package {self.tar_name}: member {member.name!r} {why}",
            hint="the package is corrupt or malicious; rebuild it with edgeinspect's builder",
        )

    def run(self, archive: tarfile.TarFile) -> None:
        for member in archive:
            relative = self.check(member)
            if member.isdir():
                (self.root / relative).mkdir(mode=0o755, parents=True, exist_ok=True)
                continue
            source = archive.extractfile(member)
            if source is None:
                raise self.reject(member, "has no readable data")
            with source:
                self.write_file(member, relative, source)

    def check(self, member: tarfile.TarInfo) -> PurePosixPath:
        """Validate one header before any of its data is touched; return its safe relative path."""
        self.count += 1
        if self.count > self.limits.max_members:
            raise self.reject(member, f"exceeds the limit of {self.limits.max_members} members")
        relative = self.check_name(member)
        if member.issym() or member.islnk():
            raise self.reject(member, f"is a link (to {member.linkname!r}); links are not allowed")
        if not (member.isreg() or member.isdir()):
            raise self.reject(
                member, "is a device, fifo or other special file; only files and folders allowed"
            )
        cap = self.name_caps.get(relative.as_posix(), self.limits.max_member_bytes)
        if member.size > cap:
            raise self.reject(member, f"is {member.size} bytes, over the {cap}-byte limit")
        self.total += member.size
        if self.total > self.max_total:
            raise self.reject(
                member,
                f"brings the total to {self.total} bytes, over the {self.max_total}-byte limit "
                f"(at most {self.limits.max_total_bytes}, or {self.limits.max_ratio}x the archive's size)",
            )
        self.check_unique(member, relative)
        return relative

    def check_name(self, member: tarfile.TarInfo) -> PurePosixPath:
        name = member.name
        if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
            raise self.reject(member, "has an absolute path")
        if "\\" in name or "\x00" in name:
            raise self.reject(member, "has a backslash or NUL in its name")
        parts = [part for part in name.split("/") if part not in ("", ".")]
        if ".." in parts:
            raise self.reject(member, "has a '..' path component")
        if not parts:
            raise self.reject(member, "has an empty name")
        return PurePosixPath(*parts)

    def check_unique(self, member: tarfile.TarInfo, relative: PurePosixPath) -> None:
        """Refuse duplicates and file/folder clashes, which would let a later member overwrite an earlier."""
        key = relative.as_posix()
        if key in self.seen:
            raise self.reject(member, "appears twice in the archive")
        for parent in relative.parents:
            if self.seen.get(parent.as_posix()) is False:
                raise self.reject(member, f"is inside {parent.as_posix()!r}, which is a file")
        if not member.isdir() and any(seen.startswith(key + "/") for seen in self.seen):
            raise self.reject(member, "is a file but earlier members are inside it")
        self.seen[key] = member.isdir()

    def write_file(self, member: tarfile.TarInfo, relative: PurePosixPath, source: IO[bytes]) -> None:
        """Stream a member to disk, creating it exclusively (never through a pre-existing link)."""
        target = self.root / relative
        target.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
        fd = os.open(target, flags, 0o644)
        written = 0
        with os.fdopen(fd, "wb") as out:
            while chunk := source.read(_COPY_CHUNK):
                written += len(chunk)
                self.written += len(chunk)
                if written > member.size:
                    raise self.reject(member, "holds more data than its header says")
                if self.written > self.max_total:  # counted as written, whatever the headers claimed
                    raise self.reject(member, f"takes the unpacked total over {self.max_total} bytes")
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        if written != member.size:
            raise self.reject(member, f"is truncated: {written} of {member.size} bytes")


def fsync_dir(path: Path) -> None:
    """Flush a folder's entries to disk so a rename survives power loss (edge boxes lose power)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
