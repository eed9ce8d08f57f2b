"""TLS on the agent's TCP port, both halves: the agent's server credentials and its clients' trust.

Why: the agent's bearer token (``EI_AGENT_TOKEN``) keeps other clients out, but on plain TCP anyone on
the path reads it, and with it could load models on the line. So a TCP listener beyond loopback needs
TLS (or an explicit ``EI_AGENT_TCP_INSECURE=true``; the agent refuses to start otherwise).

- Agent: ``EI_AGENT_TLS_CERT_FILE`` + ``EI_AGENT_TLS_KEY_FILE`` (PEM) serve TLS on every TCP
  listener; ``EI_AGENT_TLS_CLIENT_CA_FILE`` additionally demands a client certificate signed by that CA
  (mTLS). The unix socket stays plain (its file permissions guard it).
- Clients (worker, model manager, UI; :class:`AgentClientTlsSettings`): ``EI_AGENT_TLS_CA_FILE`` is
  the bundle the agent's certificate must chain to (setting it turns TLS on for a TCP address);
  ``EI_AGENT_TLS_CLIENT_CERT_FILE`` + ``EI_AGENT_TLS_CLIENT_KEY_FILE`` for mTLS;
  ``EI_AGENT_TLS_SERVER_NAME`` when the certificate names the agent differently from the address
  dialled (the chart's one certificate for every node's agent).

    tls = ClientTls(Path("/etc/edgeinspect/agent-tls/ca.crt"), server_name="edgeinspect-agent")
    client = AgentClient("agent:50051", token=token, tls=tls)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import grpc
from pydantic import BaseModel, Field, model_validator

from edgeinspect.core.errors import ConfigError

PEM_MAX_BYTES = 1 << 20
"""A CA bundle or certificate chain is kilobytes; a file larger than this is not one."""


def read_pem(path: Path, variable: str) -> bytes:
    """The PEM bytes of ``path``; ``ConfigError`` naming ``variable`` when it cannot be one."""
    try:
        with path.open("rb") as handle:
            data = handle.read(PEM_MAX_BYTES + 1)
    except OSError as exc:
        raise ConfigError(
            f"{variable}={path}: cannot read it ({exc.strerror or exc})",
            hint="point it at a readable PEM file (mounted from a Secret in a container)",
        ) from exc
    if len(data) > PEM_MAX_BYTES or b"-----BEGIN " not in data:
        raise ConfigError(
            f"{variable}={path} is not a PEM file",
            hint="give a PEM certificate / key (-----BEGIN ...-----), not DER or another file",
        )
    return data


@dataclass(frozen=True)
class ServerTls:
    """The agent's certificate and key, and the CA client certificates must chain to (mTLS) if any."""

    cert_file: Path
    key_file: Path
    client_ca_file: Path | None = None

    def credentials(self) -> grpc.ServerCredentials:
        """gRPC server credentials; every file is read (and checked) now, so a bad one stops the start."""
        key = read_pem(self.key_file, "EI_AGENT_TLS_KEY_FILE")
        cert = read_pem(self.cert_file, "EI_AGENT_TLS_CERT_FILE")
        client_ca = (
            read_pem(self.client_ca_file, "EI_AGENT_TLS_CLIENT_CA_FILE") if self.client_ca_file else None
        )
        return grpc.ssl_server_credentials(
            [(key, cert)], root_certificates=client_ca, require_client_auth=client_ca is not None
        )


@dataclass(frozen=True)
class ClientTls:
    """What a client trusts (``ca_file``), its own certificate for mTLS, and the name to verify."""

    ca_file: Path
    cert_file: Path | None = None
    key_file: Path | None = None
    server_name: str = ""

    def credentials(self) -> grpc.ChannelCredentials:
        ca = read_pem(self.ca_file, "EI_AGENT_TLS_CA_FILE")
        key = read_pem(self.key_file, "EI_AGENT_TLS_CLIENT_KEY_FILE") if self.key_file else None
        cert = read_pem(self.cert_file, "EI_AGENT_TLS_CLIENT_CERT_FILE") if self.cert_file else None
        return grpc.ssl_channel_credentials(root_certificates=ca, private_key=key, certificate_chain=cert)

    def options(self) -> list[tuple[str, str]]:
        """The channel option that verifies ``server_name`` instead of the dialled host."""
        return [("grpc.ssl_target_name_override", self.server_name)] if self.server_name else []


class AgentClientTlsSettings(BaseModel):
    """The ``EI_AGENT_TLS_*`` settings of a service that calls the agent (mixed into its settings)."""

    agent_tls_ca_file: Path | None = Field(
        default=None, description="CA bundle the agent's TLS certificate must chain to (TLS on TCP)"
    )
    agent_tls_client_cert_file: Path | None = Field(
        default=None, description="this client's certificate, when the agent demands one (mTLS)"
    )
    agent_tls_client_key_file: Path | None = Field(default=None, description="its private key")
    agent_tls_server_name: str = Field(
        default="", description="name the agent's certificate must carry, when not the dialled host"
    )

    @model_validator(mode="after")
    def _check_agent_tls(self) -> AgentClientTlsSettings:
        if (self.agent_tls_client_cert_file is None) != (self.agent_tls_client_key_file is None):
            raise ValueError("EI_AGENT_TLS_CLIENT_CERT_FILE and EI_AGENT_TLS_CLIENT_KEY_FILE go together")
        if self.agent_tls_ca_file is None and (self.agent_tls_client_cert_file or self.agent_tls_server_name):
            raise ValueError(
                "EI_AGENT_TLS_CLIENT_CERT_FILE / EI_AGENT_TLS_SERVER_NAME need EI_AGENT_TLS_CA_FILE "
                "(the CA the agent's certificate chains to)"
            )
        return self

    def agent_tls(self) -> ClientTls | None:
        """TLS for the agent channel, or None (plain: the unix socket, or a loopback/insecure port)."""
        if self.agent_tls_ca_file is None:
            return None
        return ClientTls(
            self.agent_tls_ca_file,
            self.agent_tls_client_cert_file,
            self.agent_tls_client_key_file,
            self.agent_tls_server_name,
        )
