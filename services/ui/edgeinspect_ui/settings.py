"""The UI's settings (``EI_`` environment variables), built once in ``main()`` and passed down."""

from __future__ import annotations

import re
from datetime import time
from pathlib import Path
from typing import ClassVar, Literal

from edgeinspect.core.agent_tls import AgentClientTlsSettings
from edgeinspect.core.settings import ServiceSettings
from edgeinspect.core.webguard import is_loopback
from pydantic import Field, SecretStr, model_validator

_LINE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
_SHIFT = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")


class UiSettings(ServiceSettings, AgentClientTlsSettings):
    """What the page shows and how it is protected; secrets are ``SecretStr`` so they never print."""

    service_name: ClassVar[str] = "edgeinspect-ui"

    agent_token: SecretStr | None = Field(default=None, description="the agent's EI_AGENT_TOKEN (TCP)")
    ui_port: int = Field(default=8080, ge=0, le=65535, description="HTTP port of the page and its API")
    agent_addr: str | None = Field(
        default=None, description="edge agent gRPC address (unix:///run/edgeinspect/agent.sock); unset: none"
    )
    ui_auth: Literal["none", "bearer", "basic"] = Field(
        default="bearer", description="bearer (default), basic, or none (only when EI_HTTP_HOST is loopback)"
    )
    ui_token: SecretStr | None = Field(
        default=None, description="the bearer token; unset: one is generated into EI_UI_STATE_DIR"
    )
    ui_state_dir: Path = Field(
        default=Path("~/.local/state/edgeinspect/ui"),
        description="where a generated token is kept (file ui-token, mode 0600) so restarts reuse it",
    )
    ui_allowed_hosts: str = Field(
        default="",
        description="comma-separated host names the page answers to besides localhost, 127.0.0.1, [::1]; "
        "* turns the check off",
    )
    ui_user: str = Field(default="operator", description="the basic-auth user name (EI_UI_AUTH=basic)")
    ui_password: SecretStr | None = Field(default=None, description="the basic-auth password")
    ui_lines: str = Field(default="", description="comma-separated line ids to show; empty: every line seen")
    ui_shift_starts: str = Field(
        default="06:00,14:00,22:00", description="local times at which a shift (and its counters) starts"
    )
    ui_models_refresh_s: float = Field(default=2.0, gt=0, le=300, description="agent poll period")
    ui_defects_kept: int = Field(default=24, ge=1, le=500, description="recent defects kept per line")
    ui_title: str = Field(default="edgeinspect", max_length=80, description="the page's title")

    @model_validator(mode="after")
    def _check(self) -> UiSettings:
        if self.ui_auth == "none" and not is_loopback(self.http_host):
            raise ValueError(
                f"EI_UI_AUTH=none is allowed only when EI_HTTP_HOST is loopback (127.0.0.1, ::1), "
                f"not {self.http_host!r}: use bearer (the default; a token is generated) or basic"
            )
        if self.ui_auth == "basic" and not _secret(self.ui_password):
            raise ValueError("EI_UI_AUTH=basic needs EI_UI_PASSWORD (and EI_UI_USER, default operator)")
        for line in self.fixed_lines():
            if not _LINE.match(line):
                raise ValueError(f"EI_UI_LINES: {line!r} is not a valid line id")
        self.shift_starts()
        return self

    def token_file(self) -> Path:
        """Where a generated bearer token lives (``~`` expanded)."""
        return self.ui_state_dir.expanduser() / "ui-token"

    def fixed_lines(self) -> list[str]:
        """The configured line ids, or an empty list to discover every line Redis knows."""
        return [part.strip() for part in self.ui_lines.split(",") if part.strip()]

    def shift_starts(self) -> list[time]:
        """The shift start times, sorted; a malformed entry raises ``ValueError`` naming the variable."""
        starts: list[time] = []
        for part in self.ui_shift_starts.split(","):
            match = _SHIFT.match(part.strip())
            if not match:
                raise ValueError(f"EI_UI_SHIFT_STARTS: {part.strip()!r} is not HH:MM")
            starts.append(time(int(match.group(1)), int(match.group(2))))
        return sorted(set(starts))


def _secret(value: SecretStr | None) -> str:
    return value.get_secret_value() if value is not None else ""
