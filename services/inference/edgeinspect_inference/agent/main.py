"""``edgeinspect-agent``: build the settings, serve both agent APIs and /metrics, stop cleanly on SIGTERM.

Exit codes: 0 after a clean stop, 2 for invalid settings (the message names the ``EI_`` variable).
"""

from __future__ import annotations

import argparse
import json
import sys

from edgeinspect.core.errors import ConfigError
from edgeinspect.core.lifecycle import install_signal_handlers
from edgeinspect.core.observability import Health, HealthServer, configure_logging, get_logger
from prometheus_client import CollectorRegistry

from edgeinspect_inference.agent.server import AgentServer
from edgeinspect_inference.agent.settings import AgentSettings

log = get_logger("edgeinspect_inference.agent")


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="edgeinspect-agent",
        description="The edge agent: ONNX Runtime models behind the SageMaker-Edge-compatible gRPC API "
        "and edgeinspect's extensions. Configured by EI_ environment variables; "
        "see services/inference/README.md.",
    )
    parser.add_argument("--check-config", action="store_true", help="validate the settings, print them, exit")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script."""
    args = _parse_args(argv)
    try:
        settings = AgentSettings.load()
    except ConfigError as exc:
        print(f"edgeinspect-agent: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, service=AgentSettings.service_name)
    if args.check_config:
        print(json.dumps(settings.model_dump(mode="json"), indent=2))
        return 0
    health = Health()
    stop = install_signal_handlers(health)
    registry = CollectorRegistry()
    try:
        agent = AgentServer(settings, registry).start()
    except ConfigError as exc:
        log.error("invalid_settings", error=str(exc))
        print(f"edgeinspect-agent: {exc}", file=sys.stderr)
        return 2
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
