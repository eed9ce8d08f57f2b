"""Verified, resumable download, written once for every store.

Model packages are large and edge links are flaky, so a download streams into ``<dest>.part``, enforces
the size limit while streaming (a hostile or wrong object cannot fill the disk), checks the sha256 at
the end and only then renames into place. An interrupted download keeps its ``.part``; the next call
resumes it with a ranged read, but only when it can tell the object has not changed since: the object's
etag is recorded on the ``.part`` (an xattr), or, where xattrs are unsupported, a known sha256 will catch
a mixed file.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from edgeinspect.core.errors import StorageError
from edgeinspect.core.observability import get_logger
from edgeinspect.core.storage.base import ObjectInfo, ObjectNotFoundError, ProgressCallback, normalize_sha256
from edgeinspect.core.storage.fsio import XATTR_ETAG, fsync_dir, get_xattr, set_xattr, sync

if TYPE_CHECKING:
    from edgeinspect.core.storage.base import ObjectStore

log = get_logger(__name__)
_READ_CHUNK = 1 << 20


def part_path(dest: Path) -> Path:
    """Where an in-progress download of ``dest`` lives (and is resumed from)."""
    return dest.with_name(dest.name + ".part")


def fetch_verified(
    store: ObjectStore,
    key: str,
    dest: Path,
    expected_sha256: str | None,
    max_bytes: int | None,
    progress: ProgressCallback | None,
) -> ObjectInfo:
    """See ``ObjectStore.download``."""
    expected = normalize_sha256(expected_sha256)
    url = store.url_for(key)
    info = store.head(key)
    if info is None:
        raise ObjectNotFoundError(f"no object at {url}", hint="check the URL, or that its upload finished")
    part = part_path(dest)
    if max_bytes is not None and info.size > max_bytes:
        _discard(part)
        raise StorageError(
            f"{url} is {info.size} bytes, more than the limit of {max_bytes}",
            hint="raise the size limit if this object is expected to be that large",
        )
    expected = expected or info.sha256
    resumed, done, actual = _write_part(store, key, info, part, max_bytes, expected, progress)
    if resumed and expected is not None and actual != expected:
        log.warning("storage_download_restarted", url=url, reason="resumed part failed sha256")
        _discard(part)  # the kept prefix was not this object's after all: fetch it whole, once
        resumed, done, actual = _write_part(store, key, info, part, max_bytes, expected, progress)
    if done != info.size:
        raise StorageError(
            f"{url} ended after {done} of {info.size} bytes",
            hint="retry: the partial download is kept and will resume",
        )
    if expected is not None and actual != expected:
        _discard(part)
        log.warning("storage_sha256_mismatch", url=url, expected=expected, actual=actual)
        raise StorageError(
            f"sha256 mismatch for {url}: expected {expected}, actual {actual}",
            hint="the object is corrupt or not the one the job named; nothing was written",
        )
    os.replace(part, dest)
    fsync_dir(dest.parent)
    return replace(info, sha256=actual)


def _write_part(
    store: ObjectStore,
    key: str,
    info: ObjectInfo,
    part: Path,
    max_bytes: int | None,
    expected: str | None,
    progress: ProgressCallback | None,
) -> tuple[bool, int, str]:
    """Append the missing bytes to ``part``: (whether it resumed, bytes now in it, their sha256)."""
    try:
        part.parent.mkdir(parents=True, exist_ok=True)
        offset = _resumable_offset(part, info, expected)
        done, actual = _stream_to_part(store, key, info, part, offset, max_bytes, progress)
    except OSError as exc:
        raise StorageError(
            f"cannot write {part}: {exc.strerror or exc}", hint="check free disk space and folder permissions"
        ) from exc
    return offset > 0, done, actual


def _stream_to_part(
    store: ObjectStore,
    key: str,
    info: ObjectInfo,
    part: Path,
    offset: int,
    max_bytes: int | None,
    progress: ProgressCallback | None,
) -> tuple[int, str]:
    """Append bytes from ``offset`` on to ``part``; return the bytes now in it and their sha256."""
    hasher = _hash_prefix(part, offset)
    limit = info.size if max_bytes is None else min(info.size, max_bytes)
    done = offset
    with open(part, "ab" if offset else "wb") as fh:
        if offset == 0:
            set_xattr(part, XATTR_ETAG, info.etag)
        else:
            log.info("storage_download_resumed", url=store.url_for(key), offset=offset, size=info.size)
            if progress is not None:
                progress(offset)
        if offset < info.size:
            with store._open_stream(key, offset, info) as chunks:
                for chunk in chunks:
                    done += len(chunk)
                    if done > limit:
                        fh.close()
                        _discard(part)
                        raise _too_big(store.url_for(key), info, max_bytes, done)
                    fh.write(chunk)
                    hasher.update(chunk)
                    if progress is not None:
                        progress(done)
        sync(fh)
    return done, hasher.hexdigest()


def _too_big(url: str, info: ObjectInfo, max_bytes: int | None, done: int) -> StorageError:
    if max_bytes is not None and done > max_bytes:
        return StorageError(
            f"{url} sent more than the limit of {max_bytes} bytes",
            hint="raise the size limit if this object is expected to be that large",
        )
    return StorageError(f"{url} changed while downloading (longer than {info.size} bytes)", hint="retry")


def _resumable_offset(part: Path, info: ObjectInfo, expected: str | None) -> int:
    """Bytes of ``part`` worth keeping: 0 unless it provably belongs to this version of the object."""
    try:
        size = part.stat().st_size
    except FileNotFoundError:
        return 0
    recorded = get_xattr(part, XATTR_ETAG)
    same_object = recorded == info.etag if recorded is not None else expected is not None
    if not same_object or size > info.size:
        return 0
    return size


def _hash_prefix(part: Path, length: int) -> hashlib._Hash:
    """sha256 state after the first ``length`` bytes of ``part`` (the already-downloaded prefix)."""
    hasher = hashlib.sha256()
    if length == 0:
        return hasher
    with open(part, "rb") as fh:
        remaining = length
        while remaining:
            chunk = fh.read(min(_READ_CHUNK, remaining))
            if not chunk:
                break
            hasher.update(chunk)
            remaining -= len(chunk)
    return hasher


def _discard(part: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        part.unlink()
