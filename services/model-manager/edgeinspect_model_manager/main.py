"""``edgeinspect-model-manager``: build the settings, serve health and metrics, run jobs until SIGTERM.

Exit codes: 0 after a clean stop, 2 for invalid settings (the message names the ``EI_`` variable).
"""

from __future__ import annotations

import sys

from edgeinspect.core.errors import ConfigError
from edgeinspect.core.lifecycle import install_signal_handlers
from edgeinspect.core.observability import Health, HealthServer, get_logger
from edgeinspect.core.service_main import ServiceCli, refuse, run_service
from prometheus_client import CollectorRegistry

from edgeinspect_model_manager.service import ModelManagerService
from edgeinspect_model_manager.settings import ModelManagerSettings

log = get_logger("edgeinspect_model_manager")

CLI = ServiceCli(
    prog="edgeinspect-model-manager",
    description="Run model deployment jobs (AWS IoT Jobs over MQTT) against the local edge agent. "
    "Configured by EI_ environment variables; see services/model-manager/README.md.",
    settings=ModelManagerSettings,
    url_fields=("mqtt_url", "redis_url", "s3_endpoint_url"),
)


EXIT_DEADLINE_S = 55.0
"""A job step in flight finishes before the exit (the chart gives the pod 60 s, then SIGKILL)."""


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script."""
    return run_service(CLI, argv, serve)


def serve(settings: ModelManagerSettings) -> int:
    """Run deployment jobs until SIGTERM, with health and metrics served alongside."""
    health = Health()
    stop = install_signal_handlers(health, exit_deadline_s=EXIT_DEADLINE_S)
    registry = CollectorRegistry()
    try:
        service = ModelManagerService(settings, stop=stop, registry=registry, health=health)
    except ConfigError as exc:
        return refuse(CLI.prog, exc)
    server = HealthServer(health, settings.http_host, settings.http_port, registry).start()
    log.info("model_manager_serving", http_port=server.port, thing=settings.thing_name)
    try:
        service.run()
    finally:
        server.stop()
    log.info("model_manager_exited")
    return 0


if __name__ == "__main__":
    sys.exit(main())
