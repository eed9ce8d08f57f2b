"""Settings of ``edgeinspect fleet serve`` (``EI_`` environment variables), built once and passed down.

``EI_FLEET_DB`` is shared with the CLI (``--fleet-db`` overrides it there); ``EI_JOBS_PREFIX`` and
``EI_STATE_TOPIC_ROOT`` must be the same as the devices' (the model manager reads the same names).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, ClassVar

from edgeinspect.core.mqtt import TlsOptions
from edgeinspect.core.settings import ServiceSettings
from edgeinspect.core.topics import DEFAULT_JOBS_PREFIX, EDGEINSPECT_ROOT
from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import NoDecode

from edgeinspect_cloud.fleet.errors import FleetError
from edgeinspect_cloud.fleet.records import check_group, check_thing

FLEET_DB_ENV = "EI_FLEET_DB"


def default_fleet_db() -> str:
    """``sqlite:///`` in the user's data folder (``$XDG_DATA_HOME`` or ``~/.local/share``)."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return f"sqlite:///{Path(base) / 'edgeinspect' / 'fleet.db'}"


def parse_groups(value: str) -> dict[str, list[str]]:
    """``line-3=edge-1,edge-2;line-4=edge-3`` -> ``{"line-3": ["edge-1", "edge-2"], "line-4": [...]}``."""
    groups: dict[str, list[str]] = {}
    for part in value.split(";"):
        if not part.strip():
            continue
        name, sep, members = part.partition("=")
        if not sep:
            raise ValueError(f"{part.strip()!r} is not GROUP=THING,THING (groups are separated by ';')")
        things = [check_thing(t.strip()) for t in members.split(",") if t.strip()]
        groups.setdefault(check_group(name.strip()), []).extend(things)
    return groups


class FleetSettings(ServiceSettings):
    """Settings of the fleet jobs service (on top of ``EI_HTTP_HOST``/``EI_HTTP_PORT``, ``EI_LOG_LEVEL``)."""

    service_name: ClassVar[str] = "fleet"

    fleet_db: str = Field(default_factory=default_fleet_db, description="sqlite:///path or postgresql://...")
    fleet_groups: Annotated[dict[str, list[str]], NoDecode] = Field(
        default_factory=dict,
        description="thing groups to create at start: line-3=edge-1,edge-2;line-4=edge-3",
    )
    fleet_poll_interval_s: float = Field(
        default=1.0, gt=0, le=60, description="how often new jobs and cancels from the CLI are picked up"
    )
    fleet_workers: int = Field(
        default=4, ge=1, le=64,
        description="threads answering device requests, each with its own database connection (PostgreSQL;"
        " SQLite always uses one)",
    )  # fmt: skip
    mqtt_url: str = Field(
        default="mqtt://127.0.0.1:1883", description="mqtt://host:1883 or mqtts://host:8883"
    )
    mqtt_client_id: str = Field(default="edgeinspect-fleet", description="the service's MQTT client id")
    mqtt_username: str | None = Field(default=None, description="broker user name")
    mqtt_password: SecretStr | None = Field(default=None, description="broker password")
    mqtt_ca_file: Path | None = Field(default=None, description="CA of the broker (empty: system store)")
    mqtt_cert_file: Path | None = Field(default=None, description="the service's client certificate (PEM)")
    mqtt_key_file: Path | None = Field(default=None, description="its private key (PEM)")
    mqtt_protocol: str = Field(default="5", pattern=r"^(5|3\.1\.1)$", description="MQTT protocol version")
    jobs_prefix: str = Field(default=DEFAULT_JOBS_PREFIX, description="topic prefix the devices use for jobs")
    state_topic_root: str = Field(default=EDGEINSPECT_ROOT, description="root of {root}/{thing}/state")

    @field_validator("fleet_groups", mode="before")
    @classmethod
    def _parse_groups(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        try:
            return parse_groups(value)
        except FleetError as exc:  # pydantic reports ValueErrors with the variable's name
            raise ValueError(exc.message) from exc

    @model_validator(mode="after")
    def _check_tls(self) -> FleetSettings:
        if (self.mqtt_cert_file is None) != (self.mqtt_key_file is None):
            raise ValueError("EI_MQTT_CERT_FILE and EI_MQTT_KEY_FILE must be given together")
        return self

    def mqtt_tls(self) -> TlsOptions | None:
        """TLS material for an ``mqtts://`` URL (None for ``mqtt://``)."""
        if not self.mqtt_url.lower().startswith("mqtts://"):
            return None
        return TlsOptions(self.mqtt_ca_file, self.mqtt_cert_file, self.mqtt_key_file)

    def mqtt_options(self) -> dict[str, Any]:
        """Keyword arguments for ``MqttClient`` besides the URL and client id."""
        return {
            "tls": self.mqtt_tls(),
            "username": self.mqtt_username,
            "password": self.mqtt_password.get_secret_value() if self.mqtt_password else None,
            "protocol": "5" if self.mqtt_protocol == "5" else "3.1.1",
        }
