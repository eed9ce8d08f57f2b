"""The agent's settings (``EI_*`` environment variables), built once in ``main()`` and passed down."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, ClassVar, Literal

from edgeinspect.core.agent_tls import ServerTls
from edgeinspect.core.settings import ServiceSettings
from edgeinspect.core.webguard import is_loopback, listen_host
from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import NoDecode

DEFAULT_AGENT_ADDR = "unix:///run/edgeinspect/agent.sock"


class AgentSettings(ServiceSettings):
    """Where the agent listens, which models it trusts, and how it runs them."""

    service_name: ClassVar[str] = "edgeinspect-agent"

    agent_addr: str = Field(
        default=DEFAULT_AGENT_ADDR, description="gRPC address: unix:///path/to.sock (or host:port)"
    )
    agent_tcp_addr: str = Field(default="", description="optional extra TCP listener, e.g. 127.0.0.1:50051")
    agent_token: SecretStr | None = Field(
        default=None,
        description="bearer token TCP callers must send; required for a TCP listener beyond loopback",
    )
    agent_tls_cert_file: Path | None = Field(
        default=None, description="PEM certificate (chain) the TCP listeners serve TLS with"
    )
    agent_tls_key_file: Path | None = Field(default=None, description="its PEM private key")
    agent_tls_client_ca_file: Path | None = Field(
        default=None, description="demand client certificates signed by this CA on TCP (mTLS)"
    )
    agent_tcp_insecure: bool = Field(
        default=False,
        description="allow a plain-text TCP listener beyond loopback (the token travels in clear)",
    )
    model_dir: Path = Field(
        default=Path("/var/lib/edgeinspect/models"), description="where package files are unpacked on load"
    )
    trusted_keys_dir: Path = Field(
        default=Path("/etc/edgeinspect/trusted-keys"), description="ed25519 *.pub keys packages must match"
    )
    execution_providers: Annotated[list[str], NoDecode] = Field(
        default=["auto"],
        description="auto (every provider this box has) or a preference order; with provider tuning "
        "on the fastest correct one per model is kept, otherwise the first available (cpu always is)",
    )
    intra_op_threads: int = Field(
        default=0, ge=0, description="ONNX Runtime threads per model (0: chosen by provider tuning, or ORT's)"
    )
    provider_tuning: bool = Field(
        default=True,
        description="measure each provider and thread layout on the golden input at load, keep the fastest",
    )
    provider_tuning_budget_s: float = Field(
        default=10.0, gt=0, description="time one load may spend measuring (later candidates are skipped)"
    )
    provider_tuning_runs: int = Field(default=10, ge=3, description="timed golden-input runs per candidate")
    provider_tuning_cache_dir: Path | None = Field(
        default=None, description="where decisions are cached (default: <EI_MODEL_DIR>/.provider-tuning)"
    )
    provider_rtol: float = Field(
        default=1e-3, ge=0, description="relative tolerance a candidate's fp32 answer must meet"
    )
    provider_atol: float = Field(
        default=1e-4, ge=0, description="absolute tolerance a candidate's fp32 answer must meet"
    )
    provider_int8_atol: float = Field(
        default=0.02,
        ge=0,
        description="int8: image-score tolerance beyond the CPU provider's own distance from fp32's golden",
    )
    allow_spinning: bool = Field(
        default=True, description="ORT worker threads spin between runs (lower latency, more CPU)"
    )
    grpc_threads: int = Field(default=16, ge=1, description="concurrent gRPC requests served")
    max_message_bytes: int = Field(
        default=64 * 1024 * 1024, ge=1024, description="largest gRPC message accepted (RESOURCE_EXHAUSTED)"
    )
    max_tensor_bytes: int = Field(
        default=64 * 1024 * 1024, ge=1024, description="largest tensor a shared-memory handle may name"
    )
    max_batch: int = Field(
        default=64, ge=1, description="largest batch one request may ask for (INVALID_ARGUMENT above it)"
    )
    max_manifest_bytes: int = Field(
        default=1024 * 1024, ge=1024, description="largest manifest.json a package may carry"
    )
    compat_pixels: Literal["float32", "uint8"] = Field(
        default="float32",
        description="data type the SageMaker-compatible ListModels reports for uint8 image inputs",
    )
    shutdown_grace_s: float = Field(default=10.0, ge=0, description="how long in-flight requests may finish")
    warmup_runs: int = Field(default=2, ge=0, description="inference runs on the golden input at load")
    precision: Literal["auto", "int8", "fp32"] = Field(
        default="auto",
        description="model file of a load that names no variant: auto = the package's default (int8 when "
        "it passed compile's gates) with fp32 fallback when int8 cannot run here; int8/fp32 force that file",
    )
    shadow_threads: int = Field(default=1, ge=1, description="threads that run shadow models")
    shadow_max_pending: int = Field(
        default=8, ge=1, description="shadow runs queued before new ones are skipped (never delays primary)"
    )
    shm_dir: Path = Field(default=Path("/dev/shm"), description="where POSIX shared-memory segments appear")
    fast_path: bool = Field(
        default=True,
        description="serve the worker's fast path beside a unix EI_AGENT_ADDR (agent.fast.sock)",
    )
    fast_path_max_connections: int = Field(
        default=64, ge=1, description="fast-path connections served at once (one per worker model thread)"
    )
    fast_path_batch_window_ms: float = Field(
        default=0.0,
        ge=0,
        le=50,
        description="fast path: predicts for one model arriving within this window run as one batch (0: off)",
    )
    redis_url: str = Field(
        default="", description="Redis for CaptureData (ei:capture, ei:events); empty keeps captures local"
    )
    capture_status_max: int = Field(default=10_000, ge=1, description="capture ids remembered for status")
    capture_max_pending: int = Field(
        default=64, ge=1, description="captures waiting for Redis before CaptureData is RESOURCE_EXHAUSTED"
    )
    capture_max_pending_bytes: int = Field(
        default=256 * 1024 * 1024, ge=1024, description="bytes of captures waiting for Redis, at most"
    )

    @model_validator(mode="after")
    def _tcp_beyond_loopback_needs_a_token(self) -> AgentSettings:
        """Whoever reaches an unauthenticated TCP port could load models and drive the line."""
        if self.agent_token is not None and len(self.agent_token.get_secret_value()) < 16:
            raise ValueError("EI_AGENT_TOKEN is shorter than 16 characters; use a long random token")
        remote = self.remote_listener()
        if self.agent_token is None and remote:
            raise ValueError(
                f"{remote} listens beyond this machine without authentication: set "
                "EI_AGENT_TOKEN (TCP clients send it as `authorization: Bearer ...`), or listen "
                "on 127.0.0.1 / the unix socket only"
            )
        return self

    @model_validator(mode="after")
    def _tcp_beyond_loopback_needs_tls(self) -> AgentSettings:
        """The token must not cross the network in clear: TLS, or an explicit insecure choice."""
        if (self.agent_tls_cert_file is None) != (self.agent_tls_key_file is None):
            raise ValueError("EI_AGENT_TLS_CERT_FILE and EI_AGENT_TLS_KEY_FILE go together")
        if self.agent_tls_client_ca_file is not None and self.agent_tls_cert_file is None:
            raise ValueError(
                "EI_AGENT_TLS_CLIENT_CA_FILE (mTLS) needs the agent's own EI_AGENT_TLS_CERT_FILE and "
                "EI_AGENT_TLS_KEY_FILE"
            )
        remote = self.remote_listener()
        if self.agent_tls_cert_file is None and not self.agent_tcp_insecure and remote:
            raise ValueError(
                f"{remote} listens beyond this machine without TLS, so the token and every image would "
                "cross the network in clear: set EI_AGENT_TLS_CERT_FILE and EI_AGENT_TLS_KEY_FILE "
                "(clients trust it with EI_AGENT_TLS_CA_FILE), or EI_AGENT_TCP_INSECURE=true to accept "
                "plain text on a network you trust"
            )
        return self

    def server_tls(self) -> ServerTls | None:
        """TLS for the TCP listeners, or None (plain)."""
        if self.agent_tls_cert_file is None or self.agent_tls_key_file is None:
            return None
        return ServerTls(self.agent_tls_cert_file, self.agent_tls_key_file, self.agent_tls_client_ca_file)

    def remote_listener(self) -> str:
        """``VARIABLE=address`` of the first TCP listener reachable beyond this machine ("" if none)."""
        for name, addr in self.tcp_listeners():
            if not is_loopback(listen_host(addr)):
                return f"{name}={addr}"
        return ""

    def tcp_listeners(self) -> list[tuple[str, str]]:
        """(variable, address) of every TCP listener (a ``unix:`` address is not one)."""
        pairs = [("EI_AGENT_ADDR", self.agent_addr), ("EI_AGENT_TCP_ADDR", self.agent_tcp_addr)]
        return [(name, addr) for name, addr in pairs if addr and not addr.startswith("unix:")]

    def token(self) -> str:
        return self.agent_token.get_secret_value() if self.agent_token is not None else ""

    @field_validator("execution_providers", mode="before")
    @classmethod
    def _split_providers(cls, value: object) -> object:
        """Accept ``EI_EXECUTION_PROVIDERS=cuda,cpu`` (or a JSON list) in any case."""
        if isinstance(value, str):
            parts = (part.strip().strip("\"'").lower() for part in value.strip("[] ").split(","))
            return [part for part in parts if part]
        return value
