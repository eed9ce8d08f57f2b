"""``edgeinspect-camera``: build the settings, start health and metrics, capture until SIGTERM.

Exit codes: 0 after a clean stop (or when a replay without loop has finished), 2 for invalid
settings (the message names the ``EI_`` variable).
"""

from __future__ import annotations

import sys

from edgeinspect.core.errors import ConfigError
from edgeinspect.core.lifecycle import install_signal_handlers
from edgeinspect.core.observability import Health, HealthServer, get_logger
from edgeinspect.core.service_main import ServiceCli, refuse, run_service
from prometheus_client import CollectorRegistry

from edgeinspect_camera.service import CameraService
from edgeinspect_camera.settings import CameraSettings

log = get_logger("edgeinspect_camera")

CLI = ServiceCli(
    prog="edgeinspect-camera",
    description="Capture frames (folder, video, RTSP, USB, HTTP trigger, GenICam) into ei:frames:{line}. "
    "Configured by EI_ environment variables; see services/camera/README.md.",
    settings=CameraSettings,
    url_fields=("redis_url", "source", "trigger_source"),
)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script."""
    return run_service(CLI, argv, serve)


def serve(settings: CameraSettings) -> int:
    """Capture until SIGTERM (or a finished replay), with health and metrics served alongside."""
    health = Health()
    stop = install_signal_handlers(health)
    registry = CollectorRegistry()
    try:
        service = CameraService(settings, stop=stop, registry=registry, health=health)
    except (ConfigError, ValueError) as exc:  # redis-py raises ValueError for a malformed EI_REDIS_URL
        return refuse(CLI.prog, exc)
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
