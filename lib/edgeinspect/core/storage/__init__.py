"""Object storage behind one interface: ``open_store("s3://bucket/prefix")`` or ``open_store("file:///abs/dir")``.

Every service that moves packages or captures calls ``open_store`` with a URL from its settings or a
job document, and never learns which backend it got. Everything here raises ``StorageError`` (or its
subclass ``ObjectNotFoundError``) with a hint, never a botocore or OS exception.
"""

from __future__ import annotations

import inspect
from typing import Any
from urllib.parse import unquote, urlsplit

from edgeinspect.core.errors import StorageError
from edgeinspect.core.storage.base import (
    ObjectInfo,
    ObjectNotFoundError,
    ObjectStore,
    ProgressCallback,
    validate_key,
    validate_prefix,
)
from edgeinspect.core.storage.local import LocalStore
from edgeinspect.core.storage.s3 import S3Store

__all__ = [
    "LocalStore",
    "ObjectInfo",
    "ObjectNotFoundError",
    "ObjectStore",
    "ProgressCallback",
    "S3Store",
    "open_store",
    "s3_option_names",
    "validate_key",
    "validate_prefix",
]


def s3_option_names() -> frozenset[str]:
    """The keyword options ``S3Store`` (and so ``open_store`` for ``s3://``) accepts."""
    params = inspect.signature(S3Store.__init__).parameters.values()
    return frozenset(p.name for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY)


def open_store(url: str, **options: Any) -> ObjectStore:
    """The store for ``url``: ``s3://bucket[/prefix]`` or ``file:///absolute/folder``.

    ``options`` are ``S3Store``'s keyword arguments (``endpoint_url``, ``region``, credentials,
    timeouts, multipart sizes). A ``file://`` store ignores them, so one call site built from a
    service's settings serves both kinds of URL; an unknown option name is an error for both.
    """
    unknown = set(options) - s3_option_names()
    if unknown:
        raise StorageError(
            f"unknown storage option(s) {sorted(unknown)} for {url}",
            hint=f"use some of {sorted(s3_option_names())}",
        )
    parts = urlsplit(url)
    if parts.query or parts.fragment:
        raise StorageError(f"storage URL {url!r} has a query or fragment", hint="pass options as arguments")
    if parts.scheme == "s3":
        return S3Store(parts.netloc, unquote(parts.path), **options)
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise StorageError(
                f"file URL {url!r} names host {parts.netloc!r}",
                hint="use three slashes and an absolute path: file:///var/lib/edgeinspect/store",
            )
        return LocalStore(unquote(parts.path))
    raise StorageError(
        f"unsupported storage URL {url!r}", hint="use s3://bucket/prefix or file:///absolute/folder"
    )
