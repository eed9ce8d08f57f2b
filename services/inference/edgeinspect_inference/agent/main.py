"""``edgeinspect-agent``: build the settings, serve both agent APIs and /metrics, stop cleanly on SIGTERM.

Exit codes: 0 after a clean stop, 2 for invalid settings (the message names the ``EI_`` variable).
"""

from __future__ import annotations

import sys

from edgeinspect.core.errors import ConfigError
from edgeinspect.core.lifecycle import install_signal_handlers
from edgeinspect.core.observability import Health, HealthServer, get_logger
from edgeinspect.core.service_main import ServiceCli, refuse, run_service
from prometheus_client import CollectorRegistry

from edgeinspect_inference.agent.server import AgentServer
from edgeinspect_inference.agent.settings import AgentSettings

log = get_logger("edgeinspect_inference.agent")

STOP_MARGIN_S = 10.0
"""Beyond the drain grace, for shadows, captures and the process exit; past it the agent dumps its stacks."""

CLI = ServiceCli(
    prog="edgeinspect-agent",
    description="The edge agent: ONNX Runtime models behind the SageMaker-Edge-compatible gRPC API "
    "and edgeinspect's extensions. Configured by EI_ environment variables; "
    "see services/inference/README.md.",
    settings=AgentSettings,
    url_fields=("redis_url",),
)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script."""
    return run_service(CLI, argv, serve)


def serve(settings: AgentSettings) -> int:
    """Serve both agent APIs and /metrics until SIGTERM."""
    health = Health()
    stop = install_signal_handlers(health, exit_deadline_s=settings.shutdown_grace_s + STOP_MARGIN_S)
    registry = CollectorRegistry()
    try:
        agent = AgentServer(settings, registry).start()
    except ConfigError as exc:
        return refuse(CLI.prog, exc)
    health.add_check("grpc", lambda: agent.serving)
    http = HealthServer(health, settings.http_host, settings.http_port, registry).start()
    log.info("agent_started", http_port=http.port, addr=settings.agent_addr, tcp_addr=settings.agent_tcp_addr)
    try:
        stop.wait()
    finally:
        agent.stop()
        http.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
