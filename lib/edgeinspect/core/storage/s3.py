"""``s3://`` store: AWS S3 or any S3-compatible server (MinIO, Ceph, moto) through boto3.

Credentials come from boto3's normal chain (environment, profile, pod/instance role) unless given
explicitly. The endpoint is a parameter: services read ``EI_S3_ENDPOINT_URL`` in their settings and
pass it here. We write the sha256 of every object as user metadata, so a later download can verify
what it got without being told the digest.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from urllib3.exceptions import HTTPError as Urllib3HTTPError

from edgeinspect.core.errors import StorageError
from edgeinspect.core.hashing import sha256_bytes, sha256_file
from edgeinspect.core.observability import get_logger
from edgeinspect.core.storage.base import (
    DEFAULT_CONTENT_TYPE,
    ObjectInfo,
    ObjectStore,
    ProgressCallback,
    normalize_sha256,
    unreadable_source,
    validate_key,
    validate_prefix,
)
from edgeinspect.core.storage.s3errors import error_code, root_cause, translate

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

log = get_logger(__name__)
MIB = 1 << 20
MIN_PART_SIZE = 5 * MIB
_CHUNK = MIB
_SHA_META = "sha256"
_BOTO_ERRORS = (BotoCoreError, ClientError, Urllib3HTTPError)
_CONFLICT_RETRIES = 5


class S3Store(ObjectStore):
    """Objects under ``s3://bucket/prefix``; one thread-safe boto3 client per store, made without I/O."""

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        session_token: str | None = None,
        profile: str | None = None,
        connect_timeout: float = 10.0,
        read_timeout: float = 60.0,
        max_attempts: int = 5,
        multipart_threshold: int = 64 * MIB,
        multipart_chunksize: int = 16 * MIB,
        max_concurrency: int = 4,
        page_size: int = 1000,
    ) -> None:
        if not bucket:
            raise StorageError("an s3:// URL needs a bucket", hint="use s3://bucket/prefix")
        if multipart_chunksize < MIN_PART_SIZE or multipart_threshold < MIN_PART_SIZE:
            raise StorageError(
                f"S3 multipart threshold and part size must be at least {MIN_PART_SIZE} bytes",
                hint="S3 rejects parts smaller than 5 MiB (except the last)",
            )
        clean = prefix.strip("/")
        self.bucket = bucket
        self.prefix = f"{validate_prefix(clean)}/" if clean else ""
        self.url = f"s3://{bucket}/{self.prefix}".rstrip("/")
        self.endpoint_url = endpoint_url or ""
        self._page_size = page_size
        self._client = _make_client(
            endpoint_url, region, access_key_id, secret_access_key, session_token, profile,
            Config(
                connect_timeout=connect_timeout,
                read_timeout=read_timeout,
                retries={"max_attempts": max_attempts, "mode": "standard"},
                s3={"addressing_style": "path" if endpoint_url else "auto"},
                user_agent_extra="edgeinspect",
            ),
        )  # fmt: skip
        self._transfer = TransferConfig(
            multipart_threshold=multipart_threshold,
            multipart_chunksize=multipart_chunksize,
            max_concurrency=max_concurrency,
        )

    def __repr__(self) -> str:
        return f"S3Store({self.url!r}, endpoint_url={self.endpoint_url!r})"

    def url_for(self, key: str) -> str:
        """``s3://bucket/prefix/key``."""
        return f"s3://{self.bucket}/{self._key(key)}"

    def put_bytes(self, key: str, data: bytes, content_type: str | None = None) -> ObjectInfo:
        """One PutObject carrying the sha256 as metadata."""
        digest = sha256_bytes(data)
        with self._errors(key, "write"):
            resp = self._client.put_object(**self._put_args(key, digest, content_type), Body=data)
        return ObjectInfo(
            key, len(data), _etag(resp["ETag"]), None, digest, content_type or DEFAULT_CONTENT_TYPE
        )

    def put_file(
        self,
        key: str,
        path: str | Path,
        progress: ProgressCallback | None = None,
        content_type: str | None = None,
    ) -> ObjectInfo:
        """Hash the file, then upload it (multipart above the threshold, parts in parallel)."""
        url = self.url_for(key)
        try:
            digest = sha256_file(path)
        except OSError as exc:
            raise unreadable_source(path, url, exc) from exc
        extra = {"Metadata": {_SHA_META: digest}, "ContentType": content_type or DEFAULT_CONTENT_TYPE}
        with self._errors(key, "write"):
            self._client.upload_file(
                str(path), self.bucket, self._key(key), ExtraArgs=extra,
                Callback=_Cumulative(progress) if progress else None, Config=self._transfer,
            )  # fmt: skip
        info = self.head(key)
        if info is None:
            raise StorageError(
                f"{url} is missing right after its upload", hint="check for a concurrent delete"
            )
        return info

    def put_bytes_if_absent(self, key: str, data: bytes, content_type: str | None = None) -> bool:
        """PutObject with ``If-None-Match: *``: S3 (since 2024), MinIO and moto refuse if the key exists."""
        digest = sha256_bytes(data)
        for attempt in range(_CONFLICT_RETRIES):
            try:
                self._client.put_object(
                    **self._put_args(key, digest, content_type), Body=data, IfNoneMatch="*"
                )
                return True
            except ClientError as exc:
                code = error_code(exc)
                if code in ("PreconditionFailed", "412"):
                    return False
                if code in ("ConditionalRequestConflict", "409") and attempt + 1 < _CONFLICT_RETRIES:
                    log.info("storage_conditional_write_conflict", url=self.url_for(key), attempt=attempt + 1)
                    time.sleep(0.05 * (attempt + 1))  # S3 asks us to retry a write racing ours
                    continue
                if code in ("NotImplemented", "501"):
                    raise _no_conditional_writes(self.url_for(key), self.endpoint_url) from exc
                raise translate(
                    exc, url=self.url_for(key), action="write", endpoint=self.endpoint_url
                ) from exc
            except BotoCoreError as exc:
                raise translate(
                    exc, url=self.url_for(key), action="write", endpoint=self.endpoint_url
                ) from exc
        raise StorageError(f"conditional write of {self.url_for(key)} kept conflicting", hint="retry later")

    def get_bytes(self, key: str) -> bytes:
        """One GetObject read to the end."""
        with self._errors(key, "read"):
            body = self._client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"]
            try:
                return body.read()
            finally:
                body.close()

    def head(self, key: str) -> ObjectInfo | None:
        """HeadObject; None on 404."""
        try:
            with self._errors(key, "stat"):
                resp = self._client.head_object(Bucket=self.bucket, Key=self._key(key))
        except StorageError as exc:
            if error_code(exc.__cause__ or exc) in ("404", "NoSuchKey", "NotFound"):
                return None
            raise
        return ObjectInfo(
            key=key,
            size=resp["ContentLength"],
            etag=_etag(resp["ETag"]),
            last_modified=resp["LastModified"],
            sha256=_meta_sha256(resp.get("Metadata", {})),
            content_type=resp.get("ContentType"),
        )

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """ListObjectsV2, ``page_size`` keys a request."""
        full = self.prefix + validate_prefix(prefix)
        pages = self._client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=full, PaginationConfig={"PageSize": self._page_size}
        )
        with self._errors_at(f"s3://{self.bucket}/{full}", "list"):
            for page in pages:
                for obj in page.get("Contents", []):
                    yield ObjectInfo(
                        key=obj["Key"][len(self.prefix) :],
                        size=obj["Size"],
                        etag=_etag(obj["ETag"]),
                        last_modified=obj["LastModified"],
                    )

    def delete(self, key: str) -> None:
        """DeleteObject (S3 answers the same whether or not the key existed)."""
        with self._errors(key, "delete"):
            self._client.delete_object(Bucket=self.bucket, Key=self._key(key))

    @contextlib.contextmanager
    def _open_stream(self, key: str, offset: int, info: ObjectInfo) -> Iterator[Iterator[bytes]]:
        """A GetObject pinned to ``info.etag`` (If-Match), ranged from ``offset`` when resuming."""
        args: dict[str, Any] = {"Bucket": self.bucket, "Key": self._key(key), "IfMatch": f'"{info.etag}"'}
        if offset:
            args["Range"] = f"bytes={offset}-"
        try:
            with self._errors(key, "read"):
                resp = self._client.get_object(**args)
        except StorageError as exc:
            if error_code(exc.__cause__ or exc) in ("PreconditionFailed", "412"):
                raise StorageError(f"{self.url_for(key)} changed while downloading", hint="retry") from exc
            raise
        body = resp["Body"]
        try:
            if offset and not resp.get("ContentRange"):
                raise StorageError(
                    f"the S3 server ignored the Range request for {self.url_for(key)}",
                    hint="delete the .part file to download from the start",
                )
            with self._errors(key, "read"):
                yield body.iter_chunks(_CHUNK)
        finally:
            body.close()

    def _key(self, key: str) -> str:
        return self.prefix + validate_key(key)

    def _put_args(self, key: str, digest: str, content_type: str | None) -> dict[str, Any]:
        return {
            "Bucket": self.bucket,
            "Key": self._key(key),
            "ContentType": content_type or DEFAULT_CONTENT_TYPE,
            "Metadata": {_SHA_META: digest},
        }

    def _errors(self, key: str, action: str) -> contextlib.AbstractContextManager[None]:
        return self._errors_at(self.url_for(key), action)

    @contextlib.contextmanager
    def _errors_at(self, url: str, action: str) -> Iterator[None]:
        try:
            yield
        except _BOTO_ERRORS as exc:
            raise translate(exc, url=url, action=action, endpoint=self.endpoint_url) from exc
        except Exception as exc:  # boto3's transfer manager wraps botocore errors in its own types
            if isinstance(exc, StorageError) or not isinstance(root_cause(exc), _BOTO_ERRORS):
                raise
            raise translate(exc, url=url, action=action, endpoint=self.endpoint_url) from exc


class _Cumulative:
    """Turns boto3's per-chunk callbacks (from several threads, sometimes negative on a retry) into
    a monotonic running total."""

    def __init__(self, progress: ProgressCallback) -> None:
        self._progress = progress
        self._lock = threading.Lock()
        self._total = 0
        self._reported = 0

    def __call__(self, amount: int) -> None:
        with self._lock:
            self._total += amount
            if self._total <= self._reported:
                return
            self._reported = self._total
            self._progress(self._reported)


def _make_client(
    endpoint_url: str | None,
    region: str | None,
    access_key_id: str | None,
    secret_access_key: str | None,
    session_token: str | None,
    profile: str | None,
    config: Config,
) -> S3Client:
    try:
        session = boto3.session.Session(
            aws_access_key_id=access_key_id,
            aws_secret_access_key=secret_access_key,
            aws_session_token=session_token,
            profile_name=profile,
            region_name=region,
        )
        return session.client(
            "s3", endpoint_url=endpoint_url, region_name=session.region_name or "us-east-1", config=config
        )
    except (BotoCoreError, ValueError) as exc:
        raise StorageError(f"cannot configure the S3 client: {exc}", hint="check the S3 settings") from exc


def _etag(raw: str) -> str:
    return raw.strip('"')


def _meta_sha256(metadata: dict[str, str]) -> str | None:
    """The sha256 we wrote, if present and well-formed (another tool's metadata must not break heads)."""
    try:
        return normalize_sha256(metadata.get(_SHA_META))
    except StorageError:
        return None


def _no_conditional_writes(url: str, endpoint: str) -> StorageError:
    return StorageError(
        f"the S3 server {endpoint or 'AWS S3'} does not support conditional writes (If-None-Match) for {url}",
        hint="upgrade the server (AWS S3 and MinIO support it since 2024); a plain put could lose updates",
    )
