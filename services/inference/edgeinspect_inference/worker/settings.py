"""The worker's settings (``EI_*`` environment variables), built once in ``main()`` and passed down."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import ClassVar, Literal

from edgeinspect.core.agent_tls import AgentClientTlsSettings
from edgeinspect.core.fastpath import fast_socket_path
from edgeinspect.core.settings import ServiceSettings
from edgeinspect.core.thresholds import OverrideTable
from edgeinspect.core.tiling import DEFAULT_MAX_PIXELS, TilingConfig
from pydantic import Field, field_validator

DEFAULT_AGENT_ADDR = "unix:///run/edgeinspect/agent.sock"
CLASSIFICATION_ALIAS = "defect-cls"
SEGMENTATION_ALIAS = "defect-seg"
OVERRIDES_SETTING = "EI_THRESHOLD_OVERRIDES"
MULTITASK_ALIAS = "defect-mt"


def default_consumer() -> str:
    """``hostname-pid``: unique per process, stable for the process's life (its pending entries)."""
    return f"{socket.gethostname()}-{os.getpid()}"


class WorkerSettings(ServiceSettings, AgentClientTlsSettings):
    """What the inference worker reads, which agent it calls, and how it decides, captures and alerts."""

    service_name: ClassVar[str] = "edgeinspect-inference"

    agent_addr: str = Field(
        default=DEFAULT_AGENT_ADDR, description="the agent's gRPC address: unix:///path.sock or host:port"
    )
    agent_timeout_s: float = Field(default=10.0, gt=0, description="deadline of one Predict call")
    agent_shm: Literal["auto", "on", "off"] = Field(
        default="auto",
        description="send inputs by shared memory (/dev/shm shared with the agent); auto: on a unix socket",
    )
    agent_fast_path: Literal["auto", "off"] = Field(
        default="auto",
        description="call the agent by its fast path (agent.fast.sock beside a unix EI_AGENT_ADDR) when it "
        "serves one, gRPC otherwise; off: gRPC always",
    )
    agent_fast_path_retry_s: float = Field(
        default=5.0, gt=0, description="after a fast-path failure, calls go by gRPC for this long"
    )
    consumer: str = Field(
        default_factory=default_consumer,
        min_length=1,
        description="this worker's name in the consumer group (default hostname-pid)",
    )
    cls_alias: str = Field(default=CLASSIFICATION_ALIAS, min_length=1, description="classification alias")
    seg_alias: str = Field(default=SEGMENTATION_ALIAS, min_length=1, description="segmentation alias")
    mt_alias: str = Field(
        default=MULTITASK_ALIAS,
        min_length=1,
        description="multi-task alias: while a model is served under it, it alone judges (one call a frame)",
    )
    verdict_rule: Literal["any", "classification"] = Field(
        default="any",
        description="'any': defect when either model says so; 'classification': the classifier decides",
    )
    threshold_overrides: str = Field(
        default="",
        description='this line\'s thresholds over the manifests\', JSON: {"defect-cls": {"image": 0.3}, '
        '"defect-seg:7": {"pixel": 0.6}}; a set_threshold job wins for the same key; empty: none',
    )
    capture_good_fraction: float = Field(
        default=0.01, ge=0, le=1, description="share of good parts sampled into ei:capture"
    )
    capture_band: float = Field(
        default=0.05, ge=0, le=1, description="scores within +-band of a threshold are always captured"
    )
    capture_seed: int = Field(default=0, description="seed of the good-part sample (reproducible)")
    capture_maxlen: int = Field(default=1_000, ge=10, description="approximate cap of ei:capture")
    pipeline_depth: int = Field(
        default=2, ge=1, le=16, description="frames in flight: decode of the next overlaps inference"
    )
    stale_ms: int = Field(
        default=30_000, ge=100, description="a peer's unacked frame older than this is taken over"
    )
    block_ms: int = Field(default=500, ge=1, description="how long one read waits for new frames")
    done_ttl_s: int = Field(
        default=600, ge=1, description="how long a judged frame id is remembered to refuse a second result"
    )
    model_wait_s: float = Field(
        default=30.0,
        ge=0,
        description="how long frames wait for a missing model (an agent restart) "
        "before they become verdict=no_model; 0: at once",
    )
    model_retry_s: float = Field(
        default=0.5, gt=0, le=10, description="how often a held frame looks for its model again"
    )
    catalog_refresh_s: float = Field(
        default=5.0, gt=0, description="how often aliases and manifests are re-read from the agent"
    )
    mqtt_url: str = Field(default="", description="broker for alerts (mqtt://host:1883); empty: no MQTT")
    mqtt_topic_root: str = Field(default="edgeinspect", description="root of edgeinspect/{line}/alerts")
    webhook_url: str = Field(default="", description="URL that receives a JSON POST per defect; empty: none")
    webhook_timeout_s: float = Field(default=5.0, gt=0, description="deadline of one webhook POST")
    alert_queue_size: int = Field(
        default=256, ge=1, description="alerts waiting to be sent; beyond this they are dropped and counted"
    )
    telemetry_interval_s: float = Field(
        default=300.0, ge=0, description="publish a telemetry summary this often; 0: no telemetry"
    )
    telemetry_images: bool = Field(
        default=True, description="compute image brightness/contrast/sharpness per frame for telemetry"
    )
    tiling: Literal["auto", "on", "off"] = Field(
        default="auto",
        description="cut frames larger than the model input into overlapping tiles, stitch the masks "
        "back: auto (the package's tiling hint, else frames >= EI_TILING_MIN_SCALE tiles long), on, off",
    )
    tiling_overlap: float | None = Field(
        default=None,
        ge=0,
        lt=0.9,
        description="tile overlap, a fraction of the tile; unset: package's, else 0.125",
    )
    tiling_min_scale: float | None = Field(
        default=None,
        ge=1,
        description="auto tiles a frame this many tiles long on an axis; unset: package's, else 4",
    )
    tiling_blend: Literal["max", "mean"] | None = Field(
        default=None, description="how overlapping tile masks combine; unset: package's, else max"
    )
    tiling_max_pixels: int = Field(
        default=DEFAULT_MAX_PIXELS,
        ge=1,
        description="frames with more pixels are an error result (memory bound) unless tiling is off",
    )
    tiling_batch: int = Field(default=8, ge=1, le=64, description="tiles sent per PredictBatch request")
    thing_name: str = Field(
        default="", description="this device in edgeinspect/{thing}/telemetry; empty: the line id"
    )

    @field_validator("threshold_overrides")
    @classmethod
    def _check_overrides(cls, value: str) -> str:
        OverrideTable.from_json(value, source="setting", what=OVERRIDES_SETTING)
        return value

    def override_table(self) -> OverrideTable:
        """``EI_THRESHOLD_OVERRIDES`` as a table (checked when the settings were read)."""
        return OverrideTable.from_json(self.threshold_overrides, source="setting", what=OVERRIDES_SETTING)

    def tiling_config(self) -> TilingConfig:
        """The ``EI_TILING*`` settings as the tiler reads them."""
        return TilingConfig(
            mode=self.tiling,
            overlap=self.tiling_overlap,
            min_scale=self.tiling_min_scale,
            blend=self.tiling_blend,
            max_pixels=self.tiling_max_pixels,
        )

    @property
    def fast_path_socket(self) -> Path | None:
        """The agent's fast-path socket to try (None: off, or the agent is reached over TCP)."""
        return None if self.agent_fast_path == "off" else fast_socket_path(self.agent_addr)

    @property
    def use_shm(self) -> bool:
        """Whether inputs go by shared memory: ``on``, or ``auto`` with the agent on a unix socket."""
        return self.agent_shm == "on" or (self.agent_shm == "auto" and self.agent_addr.startswith("unix:"))
