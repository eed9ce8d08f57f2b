"""The one object-store interface: S3 in the field, a local folder (``file://``) in development.

Both implementations take the same keys, give the same answers and raise the same errors, so a
service never knows (or tests) which one it has. Keys are relative to the store's prefix and checked
here, once, so a key can never climb out of a folder or hit a different S3 object than intended.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from edgeinspect.core.errors import StorageError

ProgressCallback = Callable[[int], None]
"""Called with the total bytes transferred so far, resumed bytes included. It only grows, except that a
download whose resumed ``.part`` failed verification starts counting again from zero."""

TEMP_PREFIX = ".ei-tmp-"
"""Name prefix of in-flight temp files in a local store; reserved, so listings can skip them."""

MAX_KEY_BYTES = 1024
DEFAULT_CONTENT_TYPE = "application/octet-stream"
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_FORBIDDEN_CHARS = re.compile(r"[\x00-\x1f\x7f\\]")


class ObjectNotFoundError(StorageError):
    """The key names no object: a ``StorageError`` callers may catch on its own."""


@dataclass(frozen=True)
class ObjectInfo:
    """What a store knows about one object without reading it.

    ``etag`` changes whenever the object is rewritten (S3's ETag; size+mtime for a folder).
    ``sha256`` is known when we wrote the object (S3 user metadata, a file's xattr); listings and
    objects written by other tools may not have it. ``last_modified`` is None only where the store did
    not report it without an extra request (right after ``put_bytes`` on S3).
    """

    key: str
    size: int
    etag: str
    last_modified: datetime | None = None
    sha256: str | None = None
    content_type: str | None = None


def validate_key(key: str) -> str:
    """Return ``key`` if it is a safe relative object key, else raise ``StorageError`` saying why."""
    if not isinstance(key, str) or not key:
        raise StorageError(
            f"invalid object key {key!r}: it is empty", hint="pass a key such as 'models/a.tar.gz'"
        )
    _check_parts(key, what="object key")
    return key


def validate_prefix(prefix: str) -> str:
    """Like ``validate_key`` but for listing: empty is fine, and so is one trailing ``/``."""
    if prefix == "":
        return prefix
    _check_parts(prefix.removesuffix("/") or "/", what="list prefix")
    return prefix


def _check_parts(key: str, *, what: str) -> None:
    hint = "keys are relative, '/'-separated, without '.', '..', empty parts or control characters"
    if len(key.encode("utf-8")) > MAX_KEY_BYTES:
        raise StorageError(f"invalid {what} {key[:80]!r}...: longer than {MAX_KEY_BYTES} bytes", hint=hint)
    if key.startswith("/"):
        raise StorageError(f"invalid {what} {key!r}: it starts with '/'", hint=hint)
    if _FORBIDDEN_CHARS.search(key):
        raise StorageError(f"invalid {what} {key!r}: it contains a backslash or control character", hint=hint)
    for part in key.split("/"):
        if part in ("", ".", ".."):
            raise StorageError(f"invalid {what} {key!r}: it has an empty, '.' or '..' part", hint=hint)
        if part.startswith(TEMP_PREFIX):
            raise StorageError(
                f"invalid {what} {key!r}: names starting {TEMP_PREFIX!r} are reserved", hint=hint
            )


def unreadable_source(path: str | Path, url: str, exc: OSError) -> StorageError:
    """The error of ``put_file`` when the local file cannot be read: the same from every store."""
    return StorageError(f"cannot read {path} to store it at {url}: {exc.strerror}", hint="check the path")


def normalize_sha256(value: str | None) -> str | None:
    """Lower-case a hex sha256, or raise if it is not one (a typo must not disable verification)."""
    if value is None:
        return None
    lowered = value.strip().lower()
    if not _SHA256.match(lowered):
        raise StorageError(f"invalid sha256 {value!r}", hint="pass 64 hexadecimal characters")
    return lowered


class ObjectStore(ABC):
    """A flat namespace of immutable-ish objects under one URL prefix.

    Implementations provide the primitive operations and ``_open_stream``; ``download`` and
    ``exists`` are written once here so both stores verify, limit and resume identically.
    """

    url: str
    """The store's own URL (``s3://bucket/prefix`` or ``file:///abs/path``), without a trailing slash."""

    @abstractmethod
    def url_for(self, key: str) -> str:
        """The URL of ``key`` in this store (what job documents and error messages carry)."""

    @abstractmethod
    def put_bytes(self, key: str, data: bytes, content_type: str | None = None) -> ObjectInfo:
        """Write ``data`` at ``key`` (replacing any object there); readers see old or new, never half."""

    @abstractmethod
    def put_file(
        self,
        key: str,
        path: str | Path,
        progress: ProgressCallback | None = None,
        content_type: str | None = None,
    ) -> ObjectInfo:
        """Upload a local file (multipart on S3 above the store's threshold)."""

    @abstractmethod
    def put_bytes_if_absent(self, key: str, data: bytes, content_type: str | None = None) -> bool:
        """Create ``key`` only if nothing is there; True if we created it, False if it already existed.

        Atomic against concurrent writers: of two racing callers exactly one gets True.
        """

    @abstractmethod
    def get_bytes(self, key: str) -> bytes:
        """The whole object in memory; ``ObjectNotFoundError`` if missing. Use ``download`` for big ones."""

    @abstractmethod
    def head(self, key: str) -> ObjectInfo | None:
        """What the store knows about ``key``, or None if there is no object there."""

    @abstractmethod
    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Every object whose key starts with ``prefix``, in key order, fetched page by page."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove ``key``; deleting a missing object is not an error (S3 semantics)."""

    @abstractmethod
    def _open_stream(
        self, key: str, offset: int, info: ObjectInfo
    ) -> AbstractContextManager[Iterator[bytes]]:
        """Chunks of the object from byte ``offset``; fails if the object is no longer ``info.etag``."""

    def exists(self, key: str) -> bool:
        """True if an object is stored at ``key``."""
        return self.head(key) is not None

    def download(
        self,
        key: str,
        dest_path: str | Path,
        expected_sha256: str | None = None,
        max_bytes: int | None = None,
        progress: ProgressCallback | None = None,
    ) -> ObjectInfo:
        """Fetch ``key`` to ``dest_path`` through ``<dest>.part``, verified, then renamed into place.

        The sha256 checked is ``expected_sha256`` or, failing that, the one the store recorded. An
        interrupted download leaves its ``.part`` and the next call resumes it when the object is
        unchanged; a resumed download that fails verification is fetched once more from the start.
        Nothing ever appears at ``dest_path`` unless it is complete and verified.
        """
        from edgeinspect.core.storage.download import fetch_verified

        return fetch_verified(self, validate_key(key), Path(dest_path), expected_sha256, max_bytes, progress)
