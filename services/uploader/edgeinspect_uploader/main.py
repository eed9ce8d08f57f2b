"""``edgeinspect-uploader``: capture spool on disk and resumable sync to S3 (see the README).

edgeinspect-uploader                 run until SIGTERM/SIGINT
edgeinspect-uploader --check-config  validate the EI_ settings, print them, exit 0 (or 2)
"""

from __future__ import annotations

import sys

from edgeinspect.core.errors import EdgeInspectError
from edgeinspect.core.lifecycle import install_signal_handlers
from edgeinspect.core.observability import Health, HealthServer, get_logger
from edgeinspect.core.service_main import ServiceCli, run_service

from edgeinspect_uploader.service import UploaderService
from edgeinspect_uploader.settings import UploaderSettings

log = get_logger("edgeinspect_uploader")

CLI = ServiceCli(
    prog="edgeinspect-uploader",
    description=__doc__.split("\n")[0],
    settings=UploaderSettings,
    url_fields=("redis_url", "capture_url", "s3_endpoint_url"),
    sort_keys=True,
)


def main(argv: list[str] | None = None) -> int:
    """Run the uploader; returns the process exit code (0 after a clean shutdown)."""
    return run_service(CLI, argv, serve)


def serve(settings: UploaderSettings) -> int:
    """Spool and sync captures until SIGTERM, serving health, metrics and /status alongside."""
    health = Health()
    stop = install_signal_handlers(health)
    try:
        service = UploaderService.build(settings, stop)
    except EdgeInspectError as exc:
        log.error("uploader_start_failed", error=str(exc))
        return 2
    service.add_health_checks(health)
    server = HealthServer(health, settings.http_host, settings.http_port, service.registry, service.routes())
    server.start()
    log.info("uploader_started", http_port=server.port, uploader=service.uploader_id)
    service.start()
    stop.wait()
    log.info("uploader_stopping")
    service.join(timeout=30.0)
    server.stop()
    log.info("uploader_stopped", **service.metrics.counts)
    return 0


if __name__ == "__main__":
    sys.exit(main())
