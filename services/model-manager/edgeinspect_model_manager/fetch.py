"""Download a package from ``s3://``, ``https://`` or ``file://`` into the staging folder, verified.

``s3://`` and ``file://`` go through the core object store (resumable ranged reads, size limit, sha256,
``.part`` renamed only when complete). ``https://`` (e.g. an S3 presigned URL) streams with httpx under
the same rules: an interrupted ``.part`` resumes with a ``Range`` request when the server honours it
(206) and starts over when it does not (200). Nothing appears under the final name unless its size and
sha256 are right, so a half-downloaded package can never be unpacked.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx
from edgeinspect.core.errors import StorageError
from edgeinspect.core.observability import get_logger
from edgeinspect.core.storage import ObjectNotFoundError, ObjectStore, open_store

from edgeinspect_model_manager.errors import DeployError

log = get_logger(__name__)
Progress = Callable[[int], None]
_CHUNK = 1 << 20


@dataclass(frozen=True)
class Source:
    """Where a package comes from: an object store and key, or an http(s) URL."""

    url: str
    store: ObjectStore | None = None
    key: str = ""


def open_source(url: str, store_options: dict[str, Any], allow_plain_http: bool) -> Source:
    """Split a package URL into the store that serves it and the key inside (or keep an https URL)."""
    parts = urlsplit(url)
    if parts.scheme == "https" or (parts.scheme == "http" and allow_plain_http):
        return Source(url)
    if parts.scheme == "http":
        raise DeployError(
            f"plain http:// package URL {url} refused", hint="use https:// or s3:// (or EI_ALLOW_PLAIN_HTTP)"
        )
    path = unquote(parts.path)
    folder, _, key = path.rpartition("/")
    if parts.scheme == "s3":
        key = path.lstrip("/")
        return Source(url, open_store(f"s3://{parts.netloc}", **store_options), key)
    if parts.scheme == "file":
        return Source(url, open_store(f"file://{folder or '/'}"), key)
    raise DeployError(f"unsupported package URL {url}", hint="use s3://, https:// or file://")


def remote_size(source: Source, timeout_s: float) -> int:
    """The package's size in bytes, asked before downloading (for the free-space check)."""
    if source.store is not None:
        info = source.store.head(source.key)
        if info is None:
            raise ObjectNotFoundError(f"no package at {source.url}", hint="check the job's URL")
        return info.size
    try:
        response = httpx.head(source.url, timeout=timeout_s, follow_redirects=True)
    except httpx.HTTPError as exc:
        raise StorageError(
            f"cannot reach {_safe(source.url)}: {exc}", hint="check the URL and network"
        ) from exc
    if response.status_code == 404:
        raise ObjectNotFoundError(f"no package at {_safe(source.url)} (HTTP 404)", hint="check the job's URL")
    length = response.headers.get("content-length")
    return int(length) if response.is_success and length and length.isdigit() else 0


def download(
    source: Source,
    dest: Path,
    expected_sha256: str | None,
    max_bytes: int,
    progress: Progress,
    timeout_s: float,
) -> str:
    """Fetch into ``dest`` (through ``dest.part``); returns the sha256 of what was written."""
    if source.store is not None:
        info = source.store.download(source.key, dest, expected_sha256, max_bytes, progress)
        return info.sha256 or ""
    return _download_http(source.url, dest, expected_sha256, max_bytes, progress, timeout_s)


def _safe(url: str) -> str:
    """A URL without its query (presigned URLs carry credentials there)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


def _download_http(
    url: str, dest: Path, expected: str | None, max_bytes: int, progress: Progress, timeout_s: float
) -> str:
    part = dest.with_name(dest.name + ".part")
    offset = part.stat().st_size if part.exists() else 0
    headers = {"Range": f"bytes={offset}-"} if offset else {}
    try:
        with httpx.stream("GET", url, headers=headers, timeout=timeout_s, follow_redirects=True) as response:
            if response.status_code == 416 and offset:  # the kept part is already whole (or wrong)
                part.unlink()
                return _download_http(url, dest, expected, max_bytes, progress, timeout_s)
            if response.status_code not in (200, 206):
                kind = ObjectNotFoundError if response.status_code == 404 else StorageError
                raise kind(
                    f"{_safe(url)} answered HTTP {response.status_code}",
                    hint="check the URL (a presigned URL may have expired)",
                )
            resumed = response.status_code == 206
            hasher = _hash_prefix(part, offset) if resumed else hashlib.sha256()
            done = offset if resumed else 0
            with open(part, "ab" if resumed else "wb") as fh:
                for chunk in response.iter_bytes(_CHUNK):
                    done += len(chunk)
                    if done > max_bytes:
                        fh.close()
                        part.unlink()
                        raise StorageError(
                            f"{_safe(url)} sent more than the limit of {max_bytes} bytes",
                            hint="raise EI_MAX_PACKAGE_BYTES if the package is expected to be that large",
                        )
                    fh.write(chunk)
                    hasher.update(chunk)
                    progress(done)
                fh.flush()
                os.fsync(fh.fileno())
    except httpx.HTTPError as exc:
        raise StorageError(
            f"download of {_safe(url)} failed: {exc}", hint="retry: the partial download is kept and resumes"
        ) from exc
    actual = hasher.hexdigest()
    if expected is not None and actual != expected:
        with contextlib.suppress(FileNotFoundError):
            part.unlink()
        raise StorageError(
            f"sha256 mismatch for {_safe(url)}: expected {expected}, actual {actual}",
            hint="the object is corrupt or not the one the job named; nothing was kept",
        )
    os.replace(part, dest)
    return actual


def _hash_prefix(path: Path, length: int) -> Any:
    hasher = hashlib.sha256()
    with open(path, "rb") as fh:
        remaining = length
        while remaining and (chunk := fh.read(min(_CHUNK, remaining))):
            hasher.update(chunk)
            remaining -= len(chunk)
    return hasher
