"""Settings: one pydantic-settings base, ``EI_`` environment variables, one subclass per service.

Each service builds its settings once in ``main()`` and passes them down; nothing reads the
environment at import time. Unknown ``EI_`` keys are ignored (several services share one
environment in a pod), but a wrong value fails at start-up naming its variable.
"""

from __future__ import annotations

from typing import ClassVar, Literal, TypeVar
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from edgeinspect.core.budget import Budget
from edgeinspect.core.errors import ConfigError

S = TypeVar("S", bound="ServiceSettings")


class ServiceSettings(BaseSettings):
    """Settings every service has; subclass it and add the service's own fields."""

    model_config = SettingsConfigDict(
        env_prefix="EI_",
        env_file=None,
        secrets_dir=None,
        extra="ignore",
        frozen=True,
    )
    service_name: ClassVar[str] = "edgeinspect"

    log_level: str = Field(default="INFO", description="Python log level name")
    http_host: str = Field(default="127.0.0.1", description="address of /healthz /readyz /metrics")
    http_port: int = Field(default=0, ge=0, le=65535, description="0 picks a free port")
    redis_url: str = Field(default="redis://127.0.0.1:6379/0", description="Redis with the streams")
    line: str = Field(default="line-1", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
    stream_maxlen: int = Field(default=10_000, ge=10, description="approximate cap of every stream")
    # Streams are bounded by bytes and age (edgeinspect.core.retention); the count above is a safety net.
    frames_max_bytes: int = Field(default=256 << 20, ge=1 << 20, description="ei:frames:{line} budget")
    frames_max_age_s: float = Field(default=600.0, ge=0, description="oldest frame kept; 0: no bound")
    results_max_bytes: int = Field(default=64 << 20, ge=1 << 20, description="ei:results:{line} budget")
    results_max_age_s: float = Field(default=86_400.0, ge=0, description="oldest result kept; 0: no bound")
    capture_max_bytes: int = Field(default=256 << 20, ge=1 << 20, description="ei:capture budget")
    capture_max_age_s: float = Field(default=86_400.0, ge=0, description="oldest capture kept; 0: no bound")
    events_max_bytes: int = Field(default=16 << 20, ge=1 << 20, description="ei:events budget")
    events_max_age_s: float = Field(default=604_800.0, ge=0, description="oldest event kept; 0: no bound")

    def stream_budget(self, kind: Literal["frames", "results", "capture", "events"]) -> Budget:
        """The bytes and age budget of one kind of stream (``EI_{KIND}_MAX_BYTES`` / ``_MAX_AGE_S``)."""
        return Budget(int(getattr(self, f"{kind}_max_bytes")), float(getattr(self, f"{kind}_max_age_s")))

    @classmethod
    def load(cls: type[S], **overrides: object) -> S:
        """Build settings from the environment, turning a validation error into a ``ConfigError``."""
        try:
            return cls(**overrides)  # type: ignore[arg-type]
        except ValidationError as exc:
            problems = "; ".join(
                f"EI_{'_'.join(str(p) for p in err['loc']).upper()}: {err['msg']}" for err in exc.errors()
            )
            raise ConfigError(
                f"invalid settings for {cls.service_name}: {problems}",
                hint="fix the environment variable(s) named above",
            ) from exc


def redact_url(url: str) -> str:
    """``rtsp://user:secret@cam/`` -> ``rtsp://user:***@cam/``: URLs in settings may hold passwords, and
    what a service prints (a config check, a log line, an event) is pasted into tickets."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))
