"""The uploader's settings: where captures go, where they wait, how much disk and bandwidth they may use.

Built once in ``main()`` from ``EI_`` environment variables (see the README's table) and passed down.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from edgeinspect.core.settings import ServiceSettings
from pydantic import Field

GIB = 1 << 30
MIB = 1 << 20


class UploaderSettings(ServiceSettings):
    """Settings of ``edgeinspect-uploader`` (on top of the shared ``EI_REDIS_URL``, ``EI_LINE``, ...)."""

    service_name: ClassVar[str] = "uploader"

    capture_url: str = Field(
        default="file:///var/lib/edgeinspect/captures",
        description="where captures are synced: s3://bucket/prefix or file:///absolute/folder",
    )
    s3_endpoint_url: str | None = Field(default=None, description="S3-compatible endpoint (MinIO, ...)")
    s3_region: str | None = Field(default=None, description="S3 region; boto3's default chain if unset")
    s3_max_attempts: int = Field(default=3, ge=1, le=20, description="boto3 retries inside one request")
    s3_connect_timeout_s: float = Field(default=5.0, gt=0, description="S3 connect timeout")
    s3_read_timeout_s: float = Field(default=60.0, gt=0, description="S3 read timeout")
    s3_multipart_threshold_bytes: int = Field(
        default=64 * MIB, ge=5 * MIB, description="files above this go up as S3 multipart uploads"
    )
    spool_dir: Path = Field(default=Path("/var/lib/edgeinspect/spool"), description="local spool folder")
    spool_quota_bytes: int = Field(
        default=10 * GIB, ge=1, description="capture bytes the spool may hold before it evicts"
    )
    spool_reserve_bytes: int = Field(
        default=256 * 1024,
        ge=0,
        description="free disk a new capture must leave for the upload journal (a full disk still drains)",
    )
    bandwidth_bytes_per_s: int = Field(default=0, ge=0, description="upload limit; 0 means unlimited")
    bandwidth_burst_bytes: int = Field(
        default=0, ge=0, description="token bucket size; 0 means a quarter second of bandwidth, >= 64 KiB"
    )
    uploader_id: str = Field(
        default="",
        pattern=r"^([A-Za-z0-9][A-Za-z0-9_.-]{0,62})?$",
        description="names this uploader in manifest parts and the consumer group; empty: the spool's own id",
    )
    batch_max_captures: int = Field(default=50, ge=1, description="captures per upload batch")
    batch_max_bytes: int = Field(default=64 * MIB, ge=1, description="bytes per upload batch")
    upload_concurrency: int = Field(default=4, ge=1, le=32, description="files uploaded in parallel")
    read_batch: int = Field(default=20, ge=1, description="stream entries read at a time")
    retry_initial_s: float = Field(default=1.0, gt=0, description="first wait after a failed upload")
    retry_max_s: float = Field(default=300.0, gt=0, description="longest wait between upload attempts")
    stale_claim_ms: int = Field(default=60_000, ge=1000, description="claim a dead peer's entries after")
    tombstone_ttl_s: int = Field(
        default=86_400, ge=60, description="how long an uploaded capture's id is remembered (dedup)"
    )
    rejected_keep: int = Field(default=1000, ge=1, description="malformed entries kept in rejected/")
    telemetry_forward: bool = Field(
        default=True, description="upload the worker's telemetry summaries (ei:events) beside the manifests"
    )
    telemetry_spool_max: int = Field(
        default=10_000,
        ge=10,
        description="summaries kept in spool/telemetry while the store is down "
        "(a few KB each); beyond it the oldest are evicted and counted",
    )

    def store_options(self) -> dict[str, Any]:
        """Keyword options for ``open_store`` (ignored by ``file://`` stores)."""
        return {
            "endpoint_url": self.s3_endpoint_url,
            "region": self.s3_region,
            "max_attempts": self.s3_max_attempts,
            "connect_timeout": self.s3_connect_timeout_s,
            "read_timeout": self.s3_read_timeout_s,
            "multipart_threshold": self.s3_multipart_threshold_bytes,
        }

    def burst_bytes(self) -> int:
        """The token bucket's capacity: the setting, or a quarter second of bandwidth (at least 64 KiB)."""
        if self.bandwidth_burst_bytes:
            return self.bandwidth_burst_bytes
        return max(self.bandwidth_bytes_per_s // 4, 64 * 1024)
