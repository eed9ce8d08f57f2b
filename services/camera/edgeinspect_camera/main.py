"""``edgeinspect-camera``: build the settings, start health and metrics, capture until SIGTERM.

Exit codes: 0 after a clean stop (or when a replay without loop has finished), 2 for invalid
settings (the message names the ``EI_`` variable).
"""

from __future__ import annotations

import argparse
import json
import sys

from edgeinspect.core.errors import ConfigError
from edgeinspect.core.lifecycle import install_signal_handlers
from edgeinspect.core.observability import Health, HealthServer, configure_logging, get_logger
from prometheus_client import CollectorRegistry

from edgeinspect_camera.service import CameraService
from edgeinspect_camera.settings import CameraSettings
from edgeinspect_camera.sources.opencv import redact

log = get_logger("edgeinspect_camera")


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="edgeinspect-camera",
        description="Capture frames (folder, video, RTSP, USB, HTTP trigger, GenICam) into ei:frames:{line}. "
        "Configured by EI_ environment variables; see services/camera/README.md.",
    )
    parser.add_argument("--check-config", action="store_true", help="validate the settings, print them, exit")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script."""
    args = _parse_args(argv)
    try:
        settings = CameraSettings.load()
    except ConfigError as exc:
        print(f"edgeinspect-camera: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, service=CameraSettings.service_name)
    if args.check_config:
        shown = settings.model_dump()
        for key in ("redis_url", "source", "trigger_source"):
            shown[key] = redact(shown[key])  # a config check is pasted into tickets; keep passwords out
        print(json.dumps(shown, indent=2, default=str))
        return 0
    health = Health()
    stop = install_signal_handlers(health)
    registry = CollectorRegistry()
    try:
        service = CameraService(settings, stop=stop, registry=registry, health=health)
    except (ConfigError, ValueError) as exc:  # redis-py raises ValueError for a malformed EI_REDIS_URL
        log.error("invalid_settings", error=str(exc))
        print(f"edgeinspect-camera: {exc}", file=sys.stderr)
        return 2
    server = HealthServer(health, settings.http_host, settings.http_port, registry).start()
    log.info("camera_serving", http_port=server.port, source=service.source.name, line=settings.line)
    try:
        service.run()
    finally:
        server.stop()
    log.info("camera_exited")
    return 0


if __name__ == "__main__":
    sys.exit(main())
