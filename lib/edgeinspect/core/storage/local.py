"""``file://`` store: a local folder that behaves like an S3 bucket, for development and single boxes.

Every write is atomic and durable (temp file beside the target, fsync, rename, fsync the folder), so a
crash leaves the old object or the new one, never a torn one; the sha256 and content type we write ride
along as xattrs. One difference from S3 remains: a key cannot be both an object and a "folder" of other
objects (``a`` and ``a/b``); such a write fails with a ``StorageError`` that says so.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import stat
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from edgeinspect.core.errors import StorageError
from edgeinspect.core.hashing import sha256_bytes
from edgeinspect.core.storage.base import (
    DEFAULT_CONTENT_TYPE,
    TEMP_PREFIX,
    ObjectInfo,
    ObjectNotFoundError,
    ObjectStore,
    ProgressCallback,
    unreadable_source,
    validate_key,
    validate_prefix,
)
from edgeinspect.core.storage.fsio import (
    XATTR_CONTENT_TYPE,
    XATTR_SHA256,
    fsync_dir,
    get_xattr,
    set_xattr,
    sync,
    temp_beside,
)

_CHUNK = 1 << 20


class LocalStore(ObjectStore):
    """Objects as files under ``root``; keys map to relative paths."""

    def __init__(self, root: str | Path) -> None:
        root = Path(root)
        if not root.is_absolute():
            raise StorageError(
                f"a file store needs an absolute folder, got {str(root)!r}",
                hint="use a URL such as file:///var/lib/edgeinspect/store",
            )
        self.root = root
        self.url = root.as_uri()

    def __repr__(self) -> str:
        return f"LocalStore({self.url!r})"

    def url_for(self, key: str) -> str:
        """``file://`` URL of the key's file."""
        return self._path(key).as_uri()

    def put_bytes(self, key: str, data: bytes, content_type: str | None = None) -> ObjectInfo:
        """Write ``data`` at ``key`` atomically."""
        with self._staged(key, data, content_type) as (tmp, path):
            os.replace(tmp, path)
            fsync_dir(path.parent)
        return self._info_or_raise(key)

    def put_file(
        self,
        key: str,
        path: str | Path,
        progress: ProgressCallback | None = None,
        content_type: str | None = None,
    ) -> ObjectInfo:
        """Copy a local file in atomically, hashing it on the way."""
        target = self._path(key)
        try:
            src = open(path, "rb")  # noqa: SIM115 - closed by the with below
        except OSError as exc:
            raise unreadable_source(path, self.url_for(key), exc) from exc
        with src, _os_errors(self.url_for(key), "write"), temp_beside(target) as (fh, tmp):
            hasher = hashlib.sha256()
            done = 0
            while chunk := src.read(_CHUNK):
                fh.write(chunk)
                hasher.update(chunk)
                done += len(chunk)
                if progress is not None:
                    progress(done)
            sync(fh)
            _tag(tmp, hasher.hexdigest(), content_type)
            os.replace(tmp, target)
            fsync_dir(target.parent)
        return self._info_or_raise(key)

    def put_bytes_if_absent(self, key: str, data: bytes, content_type: str | None = None) -> bool:
        """Write a complete temp file, then ``link`` it to the key: the kernel lets only one link win."""
        with self._staged(key, data, content_type) as (tmp, path):
            try:
                os.link(tmp, path)
            except FileExistsError:
                return False
            fsync_dir(path.parent)
        return True

    def get_bytes(self, key: str) -> bytes:
        """The file's bytes."""
        url = self.url_for(key)
        try:
            with _os_errors(url, "read"):
                return self._path(key).read_bytes()
        except _MISSING as exc:
            raise ObjectNotFoundError(f"no object at {url}", hint="check the key") from exc

    def head(self, key: str) -> ObjectInfo | None:
        """Stat the file; None if missing or a folder."""
        path = self._path(key)
        with _os_errors(self.url_for(key), "stat"):
            return _info(path, key)

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Walk the deepest folder the prefix names, yielding files in key order (temp files skipped)."""
        validate_prefix(prefix)
        folder = self.root / prefix.rpartition("/")[0]
        keys = sorted(k for k in _walk_keys(self.root, folder) if k.startswith(prefix))
        for key in keys:
            info = _info(self.root / key, key)
            if info is not None:  # deleted while we listed
                yield info

    def delete(self, key: str) -> None:
        """Unlink the file; a missing one is fine."""
        path = self._path(key)
        with _os_errors(self.url_for(key), "delete"):
            try:
                path.unlink()
            except _MISSING:
                return
            fsync_dir(path.parent)

    @contextlib.contextmanager
    def _open_stream(self, key: str, offset: int, info: ObjectInfo) -> Iterator[Iterator[bytes]]:
        path = self._path(key)
        with _os_errors(self.url_for(key), "read"), open(path, "rb") as fh:
            if _etag(os.fstat(fh.fileno())) != info.etag:
                raise StorageError(f"{self.url_for(key)} changed while downloading", hint="retry")
            fh.seek(offset)
            yield iter(lambda: fh.read(_CHUNK), b"")

    @contextlib.contextmanager
    def _staged(self, key: str, data: bytes, content_type: str | None) -> Iterator[tuple[Path, Path]]:
        """``(temp, target)``: ``data`` complete, synced and tagged in a temp file beside the key's file,
        for the caller to move into place (replace, or link when only the first writer may win)."""
        path = self._path(key)
        with _os_errors(self.url_for(key), "write"), temp_beside(path) as (fh, tmp):
            fh.write(data)
            sync(fh)
            _tag(tmp, sha256_bytes(data), content_type)
            yield tmp, path

    def _path(self, key: str) -> Path:
        return self.root / validate_key(key)

    def _info_or_raise(self, key: str) -> ObjectInfo:
        info = _info(self._path(key), key)
        if info is None:
            raise StorageError(f"{self.url_for(key)} vanished right after it was written", hint="retry")
        return info


_MISSING = (FileNotFoundError, NotADirectoryError, IsADirectoryError)


def _etag(st: os.stat_result) -> str:
    """Changes whenever the file is replaced or rewritten: inode, mtime and size."""
    return f"{st.st_ino:x}-{st.st_mtime_ns:x}-{st.st_size:x}"


def _info(path: Path, key: str) -> ObjectInfo | None:
    try:
        st = path.stat()
        if not stat.S_ISREG(st.st_mode):
            return None
        return ObjectInfo(
            key=key,
            size=st.st_size,
            etag=_etag(st),
            last_modified=datetime.fromtimestamp(st.st_mtime, tz=UTC),
            sha256=get_xattr(path, XATTR_SHA256),
            content_type=get_xattr(path, XATTR_CONTENT_TYPE),
        )
    except _MISSING:
        return None


def _tag(tmp: Path, sha256: str, content_type: str | None) -> None:
    set_xattr(tmp, XATTR_SHA256, sha256)
    set_xattr(tmp, XATTR_CONTENT_TYPE, content_type or DEFAULT_CONTENT_TYPE)


def _walk_keys(root: Path, folder: Path) -> Iterator[str]:
    """Relative keys of every regular file under ``folder`` (missing folder: nothing)."""
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = [d for d in dirnames if not d.startswith(TEMP_PREFIX)]
        rel = Path(dirpath).relative_to(root).as_posix()
        for name in filenames:
            if not name.startswith(TEMP_PREFIX):
                yield name if rel == "." else f"{rel}/{name}"


@contextlib.contextmanager
def _os_errors(url: str, action: str) -> Iterator[None]:
    """Turn an ``OSError`` into a ``StorageError`` that tells a factory engineer what to check."""
    try:
        yield
    except (*_MISSING, FileExistsError) as exc:
        if action != "write":
            raise
        raise StorageError(
            f"cannot write {url}: the key or one of its parents is both an object and a folder",
            hint="a file store cannot hold both 'a' and 'a/b'; choose another key",
        ) from exc
    except PermissionError as exc:
        raise StorageError(
            f"access denied to {action} {url}", hint="check the folder's owner and permissions"
        ) from exc
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise StorageError(
                f"disk full while trying to {action} {url}", hint="free space on that disk"
            ) from exc
        raise StorageError(
            f"cannot {action} {url}: {exc.strerror or exc}", hint="check the store's folder"
        ) from exc
