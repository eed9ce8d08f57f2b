"""The model manager's settings (``EI_`` environment variables), built once in ``main()`` and passed down.

Every threshold that decides whether a new model keeps serving (smoke-test tolerance, rollback window,
error rate, p99) is a setting, so a plant can tighten them without a new image. See the README table.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, ClassVar

from edgeinspect.core.agent_tls import AgentClientTlsSettings
from edgeinspect.core.mqtt import TlsOptions
from edgeinspect.core.package import SMOKE_ATOL, SMOKE_RTOL
from edgeinspect.core.settings import ServiceSettings
from edgeinspect.core.topics import DEFAULT_JOBS_PREFIX, EDGEINSPECT_ROOT
from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import NoDecode

GIB = 1 << 30
THING_PATTERN = r"^[a-zA-Z0-9:_-]{1,128}$"
"""AWS IoT's rule for thing names, so a device configured here is also a valid AWS IoT thing."""


class ModelManagerSettings(ServiceSettings, AgentClientTlsSettings):
    """Settings of ``edgeinspect-model-manager`` (on top of ``EI_REDIS_URL``, ``EI_LINE``, ``EI_HTTP_*``)."""

    service_name: ClassVar[str] = "model-manager"

    thing_name: str = Field(pattern=THING_PATTERN, description="this device's thing name (AWS IoT rule)")
    thing_groups: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="groups this thing belongs to (reported in its state), comma list"
    )
    mqtt_url: str = Field(
        default="mqtt://127.0.0.1:1883", description="mqtt://host:1883 or mqtts://host:8883"
    )
    mqtt_client_id: str = Field(default="", description="MQTT client id; empty: the thing name")
    mqtt_username: str | None = Field(default=None, description="broker user name (not used by AWS IoT)")
    mqtt_password: SecretStr | None = Field(default=None, description="broker password")
    mqtt_ca_file: Path | None = Field(default=None, description="CA of the broker (empty: system store)")
    mqtt_cert_file: Path | None = Field(default=None, description="this device's client certificate (PEM)")
    mqtt_key_file: Path | None = Field(default=None, description="its private key (PEM)")
    mqtt_protocol: str = Field(default="5", pattern=r"^(5|3\.1\.1)$", description="MQTT protocol version")
    jobs_prefix: str = Field(default=DEFAULT_JOBS_PREFIX, description="'$aws' for AWS IoT Core, else ours")
    state_topic_root: str = Field(default=EDGEINSPECT_ROOT, description="root of {root}/{thing}/state")
    jobs_reply_timeout_s: float = Field(default=15.0, gt=0, description="wait for accepted/rejected")
    jobs_unreadable_attempts: int = Field(
        default=3,
        ge=1,
        le=20,
        description="start-next replies that cannot be read before the job they carry is failed",
    )
    jobs_poll_interval_s: float = Field(
        default=600.0, gt=0, description="ask start-next this often when idle, in case a notify was lost"
    )

    reconcile_interval_s: float = Field(
        default=10.0, gt=0, description="how often, between jobs, the agent's aliases are checked"
    )

    agent_addr: str = Field(default="unix:///run/edgeinspect/agent.sock", description="the agent's gRPC")
    agent_timeout_s: float = Field(default=300.0, gt=0, description="longest agent call (a model load)")
    agent_token: SecretStr | None = Field(default=None, description="the agent's EI_AGENT_TOKEN (TCP)")
    agent_wait_s: float = Field(default=120.0, gt=0, description="how long start-up waits for the agent")

    model_dir: Path = Field(
        default=Path("/var/lib/edgeinspect/models"),
        description="{model_dir}/{name}/{version}/ folders, .staging/ and state.json",
    )
    trusted_keys_dir: Path = Field(
        default=Path("/etc/edgeinspect/trusted-keys"), description="ed25519 *.pub keys packages must match"
    )
    max_versions: int = Field(default=3, ge=1, description="versions kept on disk per model (aliased kept)")
    max_package_bytes: int = Field(default=2 * GIB, ge=1024, description="largest package downloaded")
    disk_space_factor: float = Field(
        default=3.0, ge=1.0, description="free space needed before a deploy, as a multiple of the package"
    )
    disk_reserve_bytes: int = Field(
        default=0, ge=0, description="space kept free on top of that (for logs, state, the OS)"
    )
    jobs_history: int = Field(default=50, ge=1, description="finished jobs remembered in state.json")

    smoke_rtol: float = Field(default=SMOKE_RTOL, ge=0, description="relative tolerance of the smoke test")
    smoke_atol: float = Field(default=SMOKE_ATOL, ge=0, description="absolute tolerance of the smoke test")
    unload_grace_s: float = Field(
        default=10.0, ge=0, description="wait before unloading a replaced version (in-flight requests)"
    )
    rollback_window_s: float = Field(
        default=300.0, ge=0, description="watch a new primary this long after the swap; 0: no watch"
    )
    watch_interval_s: float = Field(default=5.0, gt=0, description="how often the watch looks at stats")
    rollback_max_error_rate: float = Field(
        default=0.05, ge=0, le=1, description="errors/requests of the new version that trigger a rollback"
    )
    rollback_max_p99_ms: float = Field(
        default=0.0, ge=0, description="p99 latency (ms) that triggers a rollback; 0: not checked"
    )
    rollback_min_requests: int = Field(
        default=20, ge=1, description="requests needed before error rate and p99 are judged"
    )
    rollback_smoke_rerun: bool = Field(default=True, description="re-run the smoke test at each watch tick")

    s3_endpoint_url: str | None = Field(default=None, description="S3-compatible endpoint (MinIO, ...)")
    s3_region: str | None = Field(default=None, description="S3 region; boto3's default chain if unset")
    s3_max_attempts: int = Field(default=3, ge=1, le=20, description="boto3 retries inside one request")
    http_timeout_s: float = Field(default=30.0, gt=0, description="https:// package download timeouts")
    allow_plain_http: bool = Field(
        default=False, description="accept http:// package URLs (labs only: no transport security)"
    )

    @field_validator("thing_groups", mode="before")
    @classmethod
    def _split_groups(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @model_validator(mode="after")
    def _check_tls(self) -> ModelManagerSettings:
        if (self.mqtt_cert_file is None) != (self.mqtt_key_file is None):
            raise ValueError("EI_MQTT_CERT_FILE and EI_MQTT_KEY_FILE must be given together")
        return self

    @property
    def client_id(self) -> str:
        return self.mqtt_client_id or self.thing_name

    def mqtt_tls(self) -> TlsOptions | None:
        """TLS material for an ``mqtts://`` URL (None for ``mqtt://``)."""
        if not self.mqtt_url.lower().startswith("mqtts://"):
            return None
        return TlsOptions(self.mqtt_ca_file, self.mqtt_cert_file, self.mqtt_key_file)

    def store_options(self) -> dict[str, Any]:
        """Keyword options for ``open_store`` (ignored by ``file://`` stores)."""
        return {
            "endpoint_url": self.s3_endpoint_url,
            "region": self.s3_region,
            "max_attempts": self.s3_max_attempts,
        }

    @property
    def state_path(self) -> Path:
        return self.model_dir / "state.json"

    @property
    def staging_dir(self) -> Path:
        return self.model_dir / ".staging"
