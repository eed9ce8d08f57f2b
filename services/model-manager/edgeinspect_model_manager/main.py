"""``edgeinspect-model-manager``: build the settings, serve health and metrics, run jobs until SIGTERM.

Exit codes: 0 after a clean stop, 2 for invalid settings (the message names the ``EI_`` variable).
"""

from __future__ import annotations

import argparse
import json
import sys
from urllib.parse import urlsplit, urlunsplit

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


def _redact(url: str | None) -> str | None:
    """The URL with any password replaced by ``***``."""
    if not url:
        return url
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script."""
    args = _parse_args(argv)
    try:
        settings = ModelManagerSettings.load()
    except ConfigError as exc:
        print(f"edgeinspect-model-manager: {exc}", file=sys.stderr)
        return 2
    if args.check_config:
        shown = settings.model_dump(mode="json")  # SecretStr fields come out masked already
        for key in ("mqtt_url", "redis_url", "s3_endpoint_url"):
            shown[key] = _redact(shown[key])  # a config check gets pasted into tickets
        print(json.dumps(shown, indent=2, default=str))
        return 0
    configure_logging(settings.log_level, service=ModelManagerSettings.service_name)
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
