"""``edgeinspect-model-manager``: build the settings, serve health and metrics, run jobs until SIGTERM.

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

from edgeinspect_model_manager.service import ModelManagerService
from edgeinspect_model_manager.settings import ModelManagerSettings

log = get_logger("edgeinspect_model_manager")


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="edgeinspect-model-manager",
        description="Run model deployment jobs (AWS IoT Jobs over MQTT) against the local edge agent. "
        "Configured by EI_ environment variables; see services/model-manager/README.md.",
    )
    parser.add_argument("--check-config", action="store_true", help="validate the settings, print them, exit")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script."""
    args = _parse_args(argv)
    try:
        settings = ModelManagerSettings.load()
    except ConfigError as exc:
        print(f"edgeinspect-model-manager: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, service=ModelManagerSettings.service_name)
    if args.check_config:
        print(json.dumps(settings.model_dump(mode="json"), indent=2, default=str))  # the password is masked
        return 0
    health = Health()
    stop = install_signal_handlers(health)
    registry = CollectorRegistry()
    try:
        service = ModelManagerService(settings, stop=stop, registry=registry, health=health)
    except ConfigError as exc:
        log.error("invalid_settings", error=str(exc))
        print(f"edgeinspect-model-manager: {exc}", file=sys.stderr)
        return 2
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
